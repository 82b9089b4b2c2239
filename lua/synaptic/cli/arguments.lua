--- The command line's grammar: one argparse parser for every command, and
-- the -h/--help lookup that argparse cannot do without exiting.
local argparse = require "argparse"

local arguments = {}

local function positive_integer(what)
  return function(s)
    local n = math.tointeger(tonumber(s))
    if n and n > 0 then return n end
    return nil, ("%s must be a positive integer, got '%s'"):format(what, s)
  end
end

local function positive_number(what)
  return function(s)
    local n = tonumber(s)
    if n and n > 0 and n < 1e9 then return n end
    return nil, ("%s must be a positive number, got '%s'"):format(what, s)
  end
end

local function timestamp(what)
  return function(s)
    local n = tonumber(s)
    if n and n == n and n > -math.huge and n < math.huge then return n end
    return nil, ("%s must be a time in Unix seconds, got '%s'"):format(what, s)
  end
end

-- "fc1=1,fc2=2" -> { fc1 = 1, fc2 = 2 }: names unique, layers unique
-- non-negative integers.
local function layer_map(s)
  local map, used = {}, {}
  for item in (s .. ","):gmatch("([^,]*),") do
    local name, layer = item:match("^%s*(.-)%s*=%s*(%d+)%s*$")
    layer = layer and math.tointeger(tonumber(layer))
    if not name or name == "" or not layer then
      return nil, ("--map entries are name=layer, got '%s'"):format(item)
    end
    if map[name] then return nil, ("--map names '%s' twice"):format(name) end
    if used[layer] then return nil, ("--map gives layer %d twice"):format(layer) end
    map[name], used[layer] = layer, true
  end
  return map
end

local function json_flag(c) c:flag("--json", "Print machine-readable JSON (and nothing else) on stdout.") end
local function store_arg(c) c:argument("store", "Path of the store.") end

local function add_store_commands(p)
  local c = p:command("info", "Storage statistics, and every expert with its layers, versions and parameters.")
  store_arg(c) json_flag(c)

  c = p:command("checkpoints", "List checkpoints, oldest first.")
  store_arg(c) json_flag(c)

  c = p:command("verify", "Check every record, checksum and checkpoint pin; exit 1 if anything is wrong.")
  store_arg(c) json_flag(c)

  c = p:command("metrics", "List metric names with their point counts, or print one metric's points.")
  store_arg(c) c:argument("name", "Metric name (default: list every metric)."):args("?")
  c:option("--from", "Only points at or after this time (Unix seconds)."):argname("<t>")
    :convert(timestamp("--from"))
  c:option("--to", "Only points at or before this time (Unix seconds)."):argname("<t>")
    :convert(timestamp("--to"))
  c:mutex(
    c:flag("--csv", "Print CSV: a header, then one row per point (or per metric)."),
    c:flag("--json", "Print machine-readable JSON (and nothing else) on stdout."))

  c = p:command("compact", "Compact the store's files.")
  store_arg(c)

  c = p:command("backup", "Add an incremental backup of the store to DIR; prints the backup id.")
  store_arg(c) c:argument("dir", "Backup directory (created if needed).") json_flag(c)

  c = p:command("restore", "Restore a backup from DIR into the store path (the latest unless --id).")
  c:argument("store", "Path to restore into; must be absent or empty unless --force.")
  c:argument("dir", "Backup directory.")
  c:option("--id", "Backup id to restore."):argname("<n>"):convert(positive_integer("--id"))
  c:flag("--force", "Restore even if the store path is not empty.")
end

local function add_salvage_command(p)
  local c = p:command("salvage", "Copy every readable record of a damaged store into a new store OUT; "
    .. "names what was lost; exit 1 if anything was.")
  store_arg(c) c:argument("out", "Path of the new store (must not exist).") json_flag(c)
end

local function add_serve_command(p)
  local c = p:command("serve", "Sync the store with peers over ZeroMQ (P2P); prints the bound address first, "
    .. "stats at exit (after --seconds, or the first Ctrl-C / SIGTERM).")
  store_arg(c)
  c:option("--listen", "Endpoint to listen on, e.g. tcp://127.0.0.1:0 (port 0: any free port); "
    .. "beyond loopback only with --key or --insecure."):argname("<endpoint>")
  c:option("--peer", "A peer to connect to, ENDPOINT or PUBLIC@ENDPOINT under CURVE (repeatable).")
    :argname("<peer>"):count("*")
  c:option("--key", "CURVE keypair file (from synaptic keygen): encrypt, and admit only authorized peers.")
    :argname("<file>")
  c:option("--authorize", "A peer's public key to admit (repeatable; needs --key)."):argname("<public>"):count("*")
  c:option("--authorized", "A file of public keys to admit, one a line (needs --key)."):argname("<file>")
  c:flag("--insecure", "Allow a listen beyond loopback without CURVE.")
  c:option("--nats", "Sync through a NATS server at this URL instead of ZeroMQ (no --listen; "
    .. "--peer names node ids, PUBLIC@NODE_ID under --key)."):argname("<url>")
  c:option("--nats-prefix", "The mesh's NATS subject prefix (default synaptic.default; needs --nats)."):argname("<prefix>")
  c:flag("--nats-jetstream", "Keep the mesh's messages in a JetStream stream, for nodes that were offline (needs --nats).")
  c:option("--strategy", "Conflict resolution: latest_timestamp (default), merge, highest_version, prefer_local.")
    :argname("<name>")
  c:option("--max-peers", "Most peers to keep."):argname("<n>"):convert(positive_integer("--max-peers"))
  c:flag("--no-weights", "Do not sync weights.")
  c:flag("--no-configs", "Do not sync expert configs.")
  c:flag("--no-checkpoints", "Do not sync checkpoints.")
  c:flag("--create", "Create the store if it does not exist.")
  c:option("--node-id", "This node's id (default: the store's origin)."):argname("<id>")
  c:option("--seconds", "Run this long, then exit (default: until SIGINT or SIGTERM)."):argname("<s>")
    :convert(positive_number("--seconds"))
  c:option("--heartbeat", "Seconds between heartbeats."):argname("<s>")
    :convert(positive_number("--heartbeat")):default("1")
  c:option("--sync-interval", "Seconds between anti-entropy rounds."):argname("<s>")
    :convert(positive_number("--sync-interval")):default("10")
  json_flag(c)

  c = p:command("keygen", "Write a CURVE keypair to FILE (mode 0600) for serve --key; prints the public key last.")
  c:argument("file", "Key file to write.")
  c:flag("--force", "Replace FILE if it exists.")
  json_flag(c)
end

local function add_transfer_commands(p)
  local c = p:command("export", "Write an expert's weights to a safetensors file.")
  store_arg(c) c:argument("expert", "Expert id.") c:argument("file", "safetensors file to write.")
  c:mutex(
    c:option("--version", "Export this version of every layer (default: the latest).")
      :argname("<n>"):convert(positive_integer("--version")),
    c:option("--checkpoint", "Export the versions this checkpoint pins."):argname("<id>"))
  json_flag(c)

  c = p:command("import", "Read a safetensors file's weights and biases (F32, F16, BF16 or F64) as new versions.")
  store_arg(c) c:argument("expert", "Expert id to import into.") c:argument("file", "safetensors file to read.")
  c:flag("--create", "Create the store if it does not exist.")
  c:option("--map", "Layer of each tensor group, e.g. fc1=1,fc2=2 (default: layer<N> names, else name order)."):argname("<name=layer,...>")
    :convert(layer_map)
  json_flag(c)

  add_serve_command(p)
  c = p:command("report", "Write one self-contained HTML page of charts about the store.")
  store_arg(c)
  c:option("-o --output", "HTML file to write."):argname("<file>"):count(1)
  c:option("--node-stats", "A node's stats: the JSON 'synaptic serve --json' prints at exit."):argname("<file>")
  c:option("--metric", "A metric to chart (repeatable; default: every metric the store lists)."):argname("<name>")
    :count("*")
end

function arguments.parser()
  local p = argparse("synaptic", "Inspect and maintain a synaptic store.")
    :epilog("Usage is synaptic COMMAND STORE [ARGS]; 'synaptic COMMAND --help' describes one command.\n" ..
            "Exit codes: 0 success, 1 failure, 2 usage error.")
    :command_target("command")
    :help_max_width(80)
  p:flag("--version", "Print the synaptic version and exit.")
  add_store_commands(p)
  add_salvage_command(p)
  add_transfer_commands(p)
  local c = p:command("demo", "Run examples/persistence_demo.lua.")
  c:argument("dir", "Where the demo keeps its store (default: a new temporary directory); it is replaced.")
    :args("?")
  c:flag("--force", "Let the demo replace DIR even if it holds other files.")
  return p
end

-- argparse's own --help prints and calls os.exit; run() must return instead,
-- so -h/--help is found here first: the help text of the command it follows,
-- or the program's; nil when help was not asked for.
function arguments.help_request(parser, argv)
  local command
  for _, a in ipairs(argv) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      if command then
        for _, c in ipairs(parser._commands) do
          if c._name == command then return c:get_help() end
        end
      end
      return parser:get_help()
    end
    if not command and a:sub(1, 1) ~= "-" then command = a end
  end
  return nil
end

return arguments
