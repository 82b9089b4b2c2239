--- serve: a P2P node over the store until --seconds have passed (or for
-- ever). The first line is the bound address (flushed, so a script can
-- read it and start the next peer); stats are printed at exit.
local synaptic = require "synaptic"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local out, null = output.out, output.null

local commands = {}

local STAT_ORDER = { "weights_sent", "weights_received", "configs_sent", "configs_received",
                     "checkpoints_sent", "checkpoints_received", "conflicts", "rejected",
                     "bytes_sent", "bytes_received", "sync_rounds" }

local function node_config(args)
  local ok, cfg = pcall(synaptic.p2p_config, {
    node_id = args.node_id, listen = args.listen, peers = args.peer,
    heartbeat_interval_seconds = args.heartbeat,
    sync_interval_seconds = args.sync_interval,
    peer_timeout_seconds = math.max(30, args.heartbeat * 6),
    max_peers = math.max(10, #args.peer + 1),
  })
  if not ok then fail("%s", tostring(cfg):gsub("^.-p2p_config: ", "")) end
  return cfg
end

function commands.serve(args)
  local store <close> = common.open_store(args.store)
  local cfg = node_config(args)
  local node, err = synaptic.node(store, cfg)
  if not node then fail("%s", err) end
  local address = node:address()
  if args.json then
    out("%s", output.ordered_object { { "address", address or null }, { "node_id", node:node_id() } })
  else
    out("%s", address or "(not listening)")
  end
  io.stdout:flush()
  if args.seconds then
    check(node:run(args.seconds))
  else
    while true do check(node:run(3600)) end
  end
  local stats, peers = node:stats(), node:peers()
  node:close()
  if args.json then
    output.print_json { address = address or null, node_id = cfg.node_id or store:origin(),
                        stats = stats, peers = output.array(peers) }
  else
    for _, k in ipairs(STAT_ORDER) do out("%-21s %d", k, stats[k] or 0) end
    for _, p in ipairs(peers) do out("peer %s %s", p.id, p.state) end
  end
  return 0
end

return commands
