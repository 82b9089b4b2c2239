--- serve: a P2P node over the store until --seconds have passed, or the
-- first SIGINT/SIGTERM. The first line is the bound address (flushed, so
-- a script can read it and start the next peer); stats are printed at exit.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local keys = require "synaptic.cli.keys"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local out, null = output.out, output.null

local commands = {}

local STAT_ORDER = { "weights_sent", "weights_received", "configs_sent", "configs_received",
                     "checkpoints_sent", "checkpoints_received", "conflicts", "rejected",
                     "bytes_sent", "bytes_received", "sync_rounds" }

-- How long one node:run lasts between looks at the clock and the signal
-- record (node:run itself returns as soon as a trapped signal arrives).
local SLICE_SECONDS = 0.5

-- "PUBLIC@EP" (a 40-character Z85 key, which may itself hold '@') or "EP";
-- over NATS (nats true) a node id for EP.
local function parse_peer(s, nats)
  local name = nats and "node_id" or "endpoint"
  if keys.is_key(s:sub(1, 40)) and s:sub(41, 41) == "@" then
    return { [name] = s:sub(42), public = s:sub(1, 40) }
  end
  return s
end

local function nats_config(args)
  if not args.nats then
    if args.nats_prefix then fail("--nats-prefix needs --nats") end
    if args.nats_jetstream then fail("--nats-jetstream needs --nats") end
    return nil
  end
  return { url = args.nats, subject_prefix = args.nats_prefix, jetstream = args.nats_jetstream or nil }
end

local function curve_config(args)
  local authorized = {}
  for _, k in ipairs(args.authorize) do
    if not keys.is_key(k) then fail("--authorize: '%s' is not a 40-character Z85 public key", k) end
    authorized[#authorized + 1] = k
  end
  if args.authorized then
    for _, k in ipairs(keys.read_authorized(args.authorized)) do authorized[#authorized + 1] = k end
  end
  if not args.key then
    if #authorized > 0 then fail("--authorize and --authorized need --key (CURVE)") end
    return nil
  end
  local public, secret = keys.read_keyfile(args.key)
  return { public = public, secret = secret, authorized = authorized }
end

local function node_config(args)
  local peers = {}
  for i, p in ipairs(args.peer) do peers[i] = parse_peer(p, args.nats) end
  local nats = nats_config(args)
  local ok, cfg = pcall(synaptic.p2p_config, {
    transport = nats and "nats" or nil, nats = nats,
    node_id = args.node_id, listen = args.listen, peers = peers,
    heartbeat_interval_seconds = args.heartbeat,
    sync_interval_seconds = args.sync_interval,
    peer_timeout_seconds = math.max(30, args.heartbeat * 6),
    max_peers = args.max_peers or math.max(10, #peers + 1),
    conflict_resolution = args.strategy,
    mode = args.mode,
    max_send_bytes_per_second = args.max_send_rate,
    enable_weight_sync = not args.no_weights,
    enable_config_sync = not args.no_configs,
    enable_checkpoint_sync = not args.no_checkpoints,
    curve = curve_config(args), insecure = args.insecure or nil,
  })
  if not ok then
    local msg = tostring(cfg):gsub("^.-p2p_config: ", "")
    msg = msg:gsub("; set curve, or insecure = true", "; give --key FILE (CURVE), or --insecure")
             :gsub("needs a public key under CURVE %(or set curve.server_key%)",
                   "needs a public key under CURVE: give it as --peer PUBLIC@ENDPOINT")
             :gsub("more peers listed than max_peers", "more --peer than --max-peers")
             :gsub("conflict_resolution must be", "--strategy must be")
             :gsub("^mode must be", "--mode must be")
             :gsub("nats%.url", "--nats"):gsub("nats%.subject_prefix", "--nats-prefix")
    fail("%s", msg)
  end
  return cfg
end

-- SIGHUP with --authorized: the node admits what the --authorize keys and
-- the file now list, and no other key (node:authorize, node:revoke). A
-- file that does not read leaves the keys as they were. One line on
-- stderr says what changed (stdout stays the address and the report).
local function reload_authorized(node, args, admitted)
  local ok, listed = pcall(keys.read_authorized, args.authorized)
  if not ok then
    io.stderr:write(("synaptic serve: SIGHUP: %s; keys unchanged\n"):format(
      common.is_failure(listed) and listed.msg or tostring(listed)))
    return
  end
  local want = {}
  for _, k in ipairs(args.authorize) do want[k] = true end
  for _, k in ipairs(listed) do want[k] = true end
  local added, removed = 0, 0
  for k in pairs(admitted) do
    if not want[k] then node:revoke(k); admitted[k] = nil; removed = removed + 1 end
  end
  for k in pairs(want) do
    if not admitted[k] then check(node:authorize(k)); admitted[k] = true; added = added + 1 end
  end
  local n = 0
  for _ in pairs(admitted) do n = n + 1 end
  io.stderr:write(("synaptic serve: SIGHUP: read %s again: %d keys admitted (%d added, %d revoked)\n")
    :format(args.authorized, n, added, removed))
end

-- Runs the node until the deadline (nil: none) or a signal; returns the
-- signal's name, or nil. With --authorized a SIGHUP reloads that file
-- instead of ending the loop.
local function run(node, seconds, args, cfg)
  local admitted
  if args.authorized and cfg.curve then
    admitted = {}
    for _, k in ipairs(cfg.curve.authorized) do admitted[k] = true end
  end
  local deadline = seconds and synaptic.now() + seconds
  while true do
    local slice = SLICE_SECONDS
    if deadline then
      slice = math.min(slice, deadline - synaptic.now())
      if slice <= 0 then return nil end
    end
    check(node:run(slice))
    if admitted and core.take_hangup() then reload_authorized(node, args, admitted) end
    local signal = core.interrupted()
    if signal then return signal end
  end
end

local function report(args, cfg, store, address, node, signal)
  local stats, peers = node:stats(), node:peers()
  node:close()
  if args.json then
    output.print_json { address = address or null, node_id = cfg.node_id or store:origin(),
                        stats = stats, peers = output.array(peers), stopped_by = signal or "time" }
  else
    if signal then out("stopped by %s", signal) end
    for _, k in ipairs(STAT_ORDER) do out("%-21s %d", k, stats[k] or 0) end
    for _, p in ipairs(peers) do out("peer %s %s", p.id, p.state) end
  end
end

function commands.serve(args)
  local cfg = node_config(args)
  if not args.create and not common.exists(args.store) then
    fail("no store at '%s' (give --create to make a new one)", args.store)
  end
  local store <close> = common.open_store(args.store, { create = args.create })
  local node, err = synaptic.node(store, cfg)
  if not node then fail("%s", err) end
  -- the first SIGINT, SIGTERM or SIGHUP ends the loop (trapped before the address
  -- is printed, so a script that signals as soon as it reads it is heard)
  check(core.trap_signals())
  local address = node:address()
  if args.json then
    out("%s", output.ordered_object { { "address", address or null }, { "node_id", node:node_id() },
                                      { "public", cfg.curve and cfg.curve.public or null } })
  else
    out("%s", address or "(not listening)")
  end
  io.stdout:flush()
  local signal = run(node, args.seconds, args, cfg)
  report(args, cfg, store, address, node, signal)
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("serve", "Sync the store with peers over ZeroMQ (P2P); prints the bound address first, "
    .. "stats at exit (after --seconds, or the first Ctrl-C / SIGTERM).")
  arguments.store_arg(c)
  c:option("--listen", "Endpoint to listen on, e.g. tcp://127.0.0.1:0 (port 0: any free port); "
    .. "beyond loopback only with --key or --insecure."):argname("<endpoint>")
  c:option("--peer", "A peer to connect to, ENDPOINT or PUBLIC@ENDPOINT under CURVE (repeatable).")
    :argname("<peer>"):count("*")
  c:option("--key", "CURVE keypair file (from synaptic keygen): encrypt, and admit only authorized peers.")
    :argname("<file>")
  c:option("--authorize", "A peer's public key to admit (repeatable; needs --key)."):argname("<public>"):count("*")
  c:option("--authorized", "A file of public keys to admit, one a line (needs --key); read again on SIGHUP.")
    :argname("<file>")
  c:flag("--insecure", "Allow a listen beyond loopback without CURVE.")
  c:option("--nats", "Sync through a NATS server at this URL instead of ZeroMQ (no --listen; "
    .. "--peer names node ids, PUBLIC@NODE_ID under --key)."):argname("<url>")
  c:option("--nats-prefix", "The mesh's NATS subject prefix (default synaptic.default; needs --nats)."):argname("<prefix>")
  c:flag("--nats-jetstream", "Keep the mesh's messages in a JetStream stream, for nodes that were offline (needs --nats).")
  c:option("--strategy", "Conflict resolution: "   -- the core's strategy table, default first
    .. table.concat(require("synaptic.core").p2p_limits.conflict_strategies, ", ") .. ".")
    :argname("<name>")
  c:option("--mode", "Which way writes flow: "   -- the core's list, default first
    .. table.concat(require("synaptic.core").p2p_limits.modes, ", ") .. ".")
    :argname("<mode>")
  c:option("--max-peers", "Most peers to keep."):argname("<n>"):convert(arguments.positive_integer("--max-peers"))
  c:option("--max-send-rate", "Most bytes a second sent to each peer (default: no limit)."):argname("<bytes>")
    :convert(arguments.positive_integer("--max-send-rate"))
  c:flag("--no-weights", "Do not sync weights.")
  c:flag("--no-configs", "Do not sync expert configs.")
  c:flag("--no-checkpoints", "Do not sync checkpoints.")
  c:flag("--create", "Create the store if it does not exist.")
  c:option("--node-id", "This node's id (default: the store's origin)."):argname("<id>")
  c:option("--seconds", "Run this long, then exit (default: until SIGINT or SIGTERM)."):argname("<s>")
    :convert(arguments.positive_number("--seconds"))
  c:option("--heartbeat", "Seconds between heartbeats."):argname("<s>")
    :convert(arguments.positive_number("--heartbeat")):default("1")
  c:option("--sync-interval", "Seconds between anti-entropy rounds."):argname("<s>")
    :convert(arguments.positive_number("--sync-interval")):default("10")
  arguments.json_flag(c)
end

function M.command(args)
  return commands[args.command](args)
end

return M
