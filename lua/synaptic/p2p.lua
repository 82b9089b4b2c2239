--- synaptic.p2p: P2P configuration (validation and defaults) and the Lua
-- side of sync engines and nodes. The C core (sn_sync, sn_net) reads only
-- tables that went through p2p.config, so the error messages for bad
-- configs live here, in one place. The defaults and bounds are the core's
-- (core.p2p_defaults, core.p2p_limits), so Lua and C cannot disagree.
local core = require "synaptic.core"

local p2p = {}

local DEFAULTS, LIMITS = core.p2p_defaults, core.p2p_limits

local STRATEGIES, RULES, MODES = {}, {}, {}
for _, name in ipairs(LIMITS.conflict_strategies) do STRATEGIES[name] = true end
for _, name in ipairs(LIMITS.modes) do MODES[name] = true end
for _, name in ipairs(LIMITS.merge_rules) do RULES[name] = true end
local RULES_MUST = "must be " .. table.concat(LIMITS.merge_rules, ", ")

-- merge_rule: a rule's name, a table of them keyed by "expert" or
-- "expert/layer", or a function(expert, layer) returning one (checked when
-- called: a bad answer counts as a resolver error and the default decides)
local function merge_rule(v)
  if type(v) == "string" and not RULES[v] then return RULES_MUST .. ", a table or a function" end
  if type(v) == "table" then
    for k, r in pairs(v) do
      if type(k) ~= "string" then return "keys must be expert ids or \"expert/layer\"" end
      if not RULES[r] then return ("[%q] %s"):format(k, RULES_MUST) end
    end
  end
end

-- name -> {type, default, check (returns an error string or nil)}
local function positive(v) if not (v > 0) or v ~= v or v == math.huge then return "must be a positive finite number" end end
local function count(lo, hi)
  return function(v)
    if math.type(v) ~= "integer" and (v ~= math.floor(v)) then return "must be an integer" end
    if v < lo or v > hi then return ("must be between %d and %d"):format(lo, hi) end
  end
end
local function range(name) return count(LIMITS.ranges[name][1], LIMITS.ranges[name][2]) end

local function endpoint(v)
  if type(v) ~= "string" then return "must be a string" end
  if not v:match("^tcp://[^:]+:%d+$") and not v:match("^tcp://%[[%x:]+%]:%d+$")
     and not v:match("^tcp://[^:]+:%*$") and not v:match("^ipc://.+") and not v:match("^inproc://.+") then
    return "must be an endpoint like tcp://127.0.0.1:7000"
  end
end

local FIELDS = {
  node_id = { "string", nil, function(v)
    if #v == 0 or #v > LIMITS.node_id_bytes or v:find("\0", 1, true) then
      return ("must be 1 to %d bytes without NUL"):format(LIMITS.node_id_bytes)
    end
  end },
  listen = { "string", nil, endpoint },
  peers = { "table", nil, nil },                 -- checked below
  sync_interval_seconds = { "number", DEFAULTS.sync_interval_seconds, positive },
  max_peers = { "number", DEFAULTS.max_peers, range "max_peers" },
  conflict_resolution = { { "string", "function" }, DEFAULTS.conflict_resolution, function(v)
    if type(v) == "string" and not STRATEGIES[v] then
      return "must be " .. table.concat(LIMITS.conflict_strategies, ", ") .. " or a function"
    end
  end },
  merge_rule = { { "string", "table", "function" }, DEFAULTS.merge_rule, merge_rule },
  enable_weight_sync = { "boolean", DEFAULTS.enable_weight_sync },
  enable_config_sync = { "boolean", DEFAULTS.enable_config_sync },
  enable_checkpoint_sync = { "boolean", DEFAULTS.enable_checkpoint_sync },
  heartbeat_interval_seconds = { "number", DEFAULTS.heartbeat_interval_seconds, positive },
  peer_timeout_seconds = { "number", DEFAULTS.peer_timeout_seconds, positive },
  max_message_bytes = { "number", DEFAULTS.max_message_bytes, range "max_message_bytes" },
  chunk_bytes = { "number", nil, range "chunk_bytes" },   -- default: see check_sizes
  max_reassembly_bytes = { "number", DEFAULTS.max_reassembly_bytes, range "max_reassembly_bytes" },
  chunk_timeout_seconds = { "number", DEFAULTS.chunk_timeout_seconds, positive },
  max_clock_offset_ms = { "number", DEFAULTS.max_clock_offset_ms, function(v) if not (v >= 0) or v == math.huge then return "must be a finite number >= 0" end end },
  -- to each peer; 0: no limit (Syncthing's per-device rate limits)
  max_send_bytes_per_second = { "number", DEFAULTS.max_send_bytes_per_second, function(v)
    if not (v >= 0) or v > 1e15 then return "must be a number from 0 (no limit) to 1e15" end
  end },
  send_hwm = { "number", DEFAULTS.send_hwm, range "send_hwm" },
  recv_hwm = { "number", DEFAULTS.recv_hwm, range "recv_hwm" },
  discovery = { "boolean", nil },                -- default: on under CURVE only (see build)
  mode = { "string", DEFAULTS.mode, function(v)
    if not MODES[v] then return "must be " .. table.concat(LIMITS.modes, ", ") end
  end },
  insecure = { "boolean", false },               -- the front end's own listen policy
  curve = { "table", nil, nil },                 -- checked below
  transport = { "string", DEFAULTS.transport, function(v)
    if v ~= "zeromq" and v ~= "nats" then return 'must be "zeromq" or "nats"' end
  end },
  nats = { "table", nil, nil },                  -- checked below (check_nats)
}

local Z85_KEY = "^[%w%.%-:%+=%^!/%*%?&<>%(%)%[%]{}@%%%$#]+$"
local Z85_MUST = ("must be a %d-character Z85 key"):format(LIMITS.curve_key_bytes)

local function z85(v)
  return type(v) == "string" and #v == LIMITS.curve_key_bytes and v:match(Z85_KEY) ~= nil
end

local validated = setmetatable({}, { __mode = "k" })

-- A bad config raises a ConfigError from however deep the check is; the
-- public function that was called re-raises it at its caller's line (see
-- checked), so the steps below need not count stack levels.
local ConfigError = {}

local function fail(msg)
  error(setmetatable({ msg = "p2p_config: " .. msg }, ConfigError))
end

--- Validate a P2PSyncConfig table and return a new table with defaults.
-- A validated config prints as what it is, secrets left out.
local Config = { __name = "synaptic.p2p_config" }
Config.__tostring = function(c)
  local peers = {}
  for i, p in ipairs(c.peers) do peers[i] = p.endpoint or p.node_id end
  return ("synaptic.p2p_config (node %s, listen %s, peers {%s}, %s%s)")
    :format(c.node_id or "auto", c.listen or "none", table.concat(peers, ", "),
            type(c.conflict_resolution) == "function" and "custom resolver" or c.conflict_resolution,
            c.curve and ", CURVE" or "")
end

-- Each field's type and own check, with the defaults filled in.
local function check_fields(t)
  local out = {}
  for k in pairs(t) do
    if type(k) ~= "string" or not FIELDS[k] then
      fail("unknown field " .. tostring(k))
    end
  end
  for name, spec in pairs(FIELDS) do
    local v = t[name]
    if v == nil then
      v = spec[2]
    else
      local types = type(spec[1]) == "table" and spec[1] or { spec[1] }
      local ok = false
      for _, ty in ipairs(types) do ok = ok or type(v) == ty end
      if not ok then
        fail(("%s must be a %s, not a %s"):format(name, table.concat(types, " or "), type(v)))
      end
      local err = spec[3] and spec[3](v)
      if err then fail(name .. " " .. err) end
    end
    out[name] = v
  end
  return out
end

-- Times and sizes against each other; counts become integers.
local function check_sizes(out)
  if out.peer_timeout_seconds <= out.heartbeat_interval_seconds then
    fail("peer_timeout_seconds must be longer than heartbeat_interval_seconds")
  end
  for _, k in ipairs { "sync_interval_seconds", "heartbeat_interval_seconds", "peer_timeout_seconds",
                       "chunk_timeout_seconds" } do
    if out[k] > LIMITS.max_seconds then fail(k .. " is too large") end
  end
  out.max_peers = math.tointeger(out.max_peers)
  out.max_message_bytes = math.tointeger(out.max_message_bytes)
  -- a chunk and its one-entry message must fit in one message
  local room = out.max_message_bytes - LIMITS.chunk_overhead_bytes
  if out.chunk_bytes == nil then
    out.chunk_bytes = math.min(DEFAULTS.chunk_bytes, room)
  elseif out.chunk_bytes > room then
    fail(("chunk_bytes must be at most max_message_bytes - %d"):format(LIMITS.chunk_overhead_bytes))
  end
  out.chunk_bytes = math.tointeger(out.chunk_bytes)
  if out.max_reassembly_bytes < out.chunk_bytes then
    fail("max_reassembly_bytes must be at least chunk_bytes")
  end
  out.max_reassembly_bytes = math.tointeger(out.max_reassembly_bytes)
  out.send_hwm = math.tointeger(out.send_hwm)
  out.recv_hwm = math.tointeger(out.recv_hwm)
end

local function check_curve(c)
  for k in pairs(c) do
    if k ~= "public" and k ~= "secret" and k ~= "authorized" and k ~= "server_key" then
      fail("unknown field curve." .. tostring(k))
    end
  end
  if not z85(c.public) then fail("curve.public " .. Z85_MUST) end
  if not z85(c.secret) then fail("curve.secret " .. Z85_MUST) end
  if c.server_key ~= nil and not z85(c.server_key) then
    fail("curve.server_key " .. Z85_MUST)
  end
  -- authorized: keys, or { public =, node_id = } for a key that alone holds
  -- that node id (node_ids: key -> id, read by the node's transport)
  local auth, ids, holder = {}, {}, {}
  if c.authorized ~= nil then
    if type(c.authorized) ~= "table" then fail("curve.authorized must be a list of public keys") end
    for i, k in ipairs(c.authorized) do
      local where = ("curve.authorized[%d]"):format(i)
      if type(k) == "table" then
        for f in pairs(k) do
          if f ~= "public" and f ~= "node_id" then fail(("unknown field %s.%s"):format(where, tostring(f))) end
        end
        local id = k.node_id
        if type(id) ~= "string" or #id == 0 or #id > LIMITS.node_id_bytes or id:find("\0", 1, true) then
          fail(("%s.node_id must be 1 to %d bytes without NUL"):format(where, LIMITS.node_id_bytes))
        end
        if holder[id] and holder[id] ~= k.public then fail(where .. ".node_id " .. id .. " is given to two keys") end
        if not z85(k.public) then fail(where .. ".public " .. Z85_MUST) end
        if ids[k.public] and ids[k.public] ~= id then fail(where .. ".public is given two node ids") end
        ids[k.public], holder[id] = id, k.public
        k = k.public
      elseif not z85(k) then
        fail(where .. " " .. Z85_MUST)
      end
      auth[i] = k
    end
  end
  return { public = c.public, secret = c.secret, server_key = c.server_key, authorized = auth, node_ids = ids }
end

-- peers: endpoint strings or {endpoint=, public=}, normalised to the latter.
local function check_peers(out)
  local server_key = out.curve and out.curve.server_key
  local peers = {}
  for i, p in ipairs(out.peers or {}) do
    if type(p) == "string" then
      local err = endpoint(p)
      if err then fail(("peers[%d] %s"):format(i, err)) end
      peers[i] = { endpoint = p, public = server_key or nil }
    elseif type(p) == "table" then
      for k in pairs(p) do
        if k ~= "endpoint" and k ~= "public" then fail(("unknown field peers[%d].%s"):format(i, tostring(k))) end
      end
      local err = endpoint(p.endpoint)
      if err then fail(("peers[%d].endpoint %s"):format(i, err)) end
      if p.public ~= nil and not z85(p.public) then
        fail(("peers[%d].public "):format(i) .. Z85_MUST)
      end
      peers[i] = { endpoint = p.endpoint, public = p.public or server_key }
    else
      fail(("peers[%d] must be an endpoint string or {endpoint=, public=}"):format(i))
    end
    if out.curve and not peers[i].public then
      fail(("peers[%d] needs a public key under CURVE (or set curve.server_key)"):format(i))
    end
  end
  if #peers > out.max_peers then fail("more peers listed than max_peers") end
  return peers
end

-- nats = { url, subject_prefix, user/password | token | credentials | nkey, tls }
local NATS_FIELDS = { url = "string", subject_prefix = "string", user = "string", password = "string",
                      token = "string", credentials = "string", nkey = "table", tls = { "boolean", "table" },
                      jetstream = { "boolean", "table" } }
local function check_nats(n)
  for k, v in pairs(n) do
    local want = NATS_FIELDS[k]
    if type(k) ~= "string" or not want then fail("unknown field nats." .. tostring(k)) end
    local types = type(want) == "table" and want or { want }
    local ok = false
    for _, ty in ipairs(types) do ok = ok or type(v) == ty end
    if not ok then fail(("nats.%s must be a %s, not a %s"):format(k, table.concat(types, " or "), type(v))) end
  end
  local out = { url = n.url or core.nats_defaults.url, subject_prefix = n.subject_prefix or core.nats_defaults.subject_prefix,
                user = n.user, password = n.password, token = n.token, credentials = n.credentials }
  for u in out.url:gmatch("[^,]+") do
    if not u:match("^%a+://[^%s/]+$") then fail("nats.url must be a server URL like nats://127.0.0.1:4222 (or a comma-separated list)") end
  end
  -- a subject's tokens: no wildcards, no spaces, no empty token
  local bad = #out.subject_prefix > 200
  for tok in (out.subject_prefix .. "."):gmatch("([^.]*)%.") do bad = bad or not tok:match("^[%w_%-]+$") end
  if bad then
    fail("nats.subject_prefix must be dot-separated tokens of letters, digits, _ and - (at most 200 bytes)")
  end
  if (n.user == nil) ~= (n.password == nil) then fail("nats.user and nats.password go together") end
  local ways = 0
  for _, k in ipairs { "user", "token", "credentials", "nkey" } do if n[k] ~= nil then ways = ways + 1 end end
  if ways > 1 then fail("nats: give one of user/password, token, credentials or nkey") end
  if n.nkey then
    for k, v in pairs(n.nkey) do
      if (k ~= "public" and k ~= "seed_file") or type(v) ~= "string" then
        fail("nats.nkey must be { public = <nkey>, seed_file = <path> }")
      end
    end
    if not n.nkey.public or not n.nkey.seed_file then fail("nats.nkey needs public and seed_file") end
    out.nkey = { public = n.nkey.public, seed_file = n.nkey.seed_file }
  end
  if type(n.jetstream) == "table" then
    for k, v in pairs(n.jetstream) do
      if (k ~= "max_age_seconds" and k ~= "max_bytes") or type(v) ~= "number" or not (v > 0) or v == math.huge then
        fail("nats.jetstream must be true or { max_age_seconds =, max_bytes = } (positive numbers)")
      end
    end
    out.jetstream = { max_age_seconds = n.jetstream.max_age_seconds,
                      max_bytes = n.jetstream.max_bytes and math.floor(n.jetstream.max_bytes) }
  elseif n.jetstream then
    out.jetstream = {}
  end
  if type(n.tls) == "table" then
    for k, v in pairs(n.tls) do
      if (k ~= "ca" and k ~= "cert" and k ~= "key") or type(v) ~= "string" then
        fail("nats.tls must be true or { ca =, cert =, key = } (file paths)")
      end
    end
    if (n.tls.cert == nil) ~= (n.tls.key == nil) then fail("nats.tls.cert and nats.tls.key go together") end
    out.tls = { ca = n.tls.ca, cert = n.tls.cert, key = n.tls.key }
  else
    out.tls = n.tls
  end
  return out
end

-- peers of a NATS node: node ids or { node_id =, public = }.
local function check_nats_peers(out)
  local peers = {}
  for i, p in ipairs(out.peers or {}) do
    if type(p) == "string" then p = { node_id = p } end
    if type(p) ~= "table" then fail(("peers[%d] must be a node id or {node_id=, public=} under transport nats"):format(i)) end
    for k in pairs(p) do
      if k ~= "node_id" and k ~= "public" then fail(("unknown field peers[%d].%s"):format(i, tostring(k))) end
    end
    local id = p.node_id
    if type(id) ~= "string" or #id == 0 or #id > LIMITS.node_id_bytes or id:find("\0", 1, true) then
      fail(("peers[%d].node_id must be 1 to %d bytes without NUL"):format(i, LIMITS.node_id_bytes))
    end
    if p.public ~= nil and not z85(p.public) then fail(("peers[%d].public "):format(i) .. Z85_MUST) end
    peers[i] = { node_id = id, public = p.public }
  end
  if #peers > out.max_peers then fail("more peers listed than max_peers") end
  return peers
end

local function build(t)
  local nats = t.transport == "nats"
  if nats and t.max_message_bytes == nil then
    -- one message must fit the server's max_payload once sealed
    local copy = {}
    for k, v in pairs(t) do copy[k] = v end
    copy.max_message_bytes = core.nats_defaults.max_message_bytes
    t = copy
  end
  local out = check_fields(t)
  if nats then
    out.nats = check_nats(out.nats or {})
    -- over max_payload a message is lost, not just refused by one peer:
    -- leave room, since a batch of many small entries can outgrow
    -- chunk_bytes by more than the engine's per-entry estimate
    if t.chunk_bytes == nil then out.chunk_bytes = math.floor(out.max_message_bytes * 3 / 4) end
  elseif out.nats ~= nil then
    fail('nats is for transport "nats"')
  end
  check_sizes(out)
  if out.curve ~= nil then out.curve = check_curve(out.curve) end
  out.peers = nats and check_nats_peers(out) or check_peers(out)
  -- dialing what heartbeats name is safe only when a dialed node must
  -- prove its key: without CURVE it is the user's choice
  if out.discovery == nil then out.discovery = out.curve ~= nil end
  if out.listen and not out.curve and not out.insecure then
    local host = out.listen:match("^tcp://([^:]+):") or out.listen:match("^tcp://%[([%x:]+)%]:")
    if host and host ~= "127.0.0.1" and host ~= "localhost" and host ~= "::1" then
      fail("refusing to listen on " .. out.listen .. " without CURVE; set curve, or insecure = true")
    end
  end
  validated[out] = true
  return setmetatable(out, Config)
end

-- The validated config for t, called directly by a public function: a bad
-- config raises at that function's caller's line (level 3 from here), and
-- anything else raised (a bug) passes through unchanged.
local function checked(t, fn, arg)
  if validated[t] then return t end
  if type(t) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(arg, fn, type(t)), 3)
  end
  local ok, res = pcall(build, t)
  if ok then return res end
  if getmetatable(res) == ConfigError then error(res.msg, 3) end
  error(res, 0)
end

--- Validate a P2PSyncConfig table and return a new table with defaults.
function p2p.config(t)
  local config = checked(t, "p2p_config", 1)
  return config
end

-- The store argument, checked here so that a wrong one raises at the
-- caller's line (level 3 from here), not inside this file.
local function check_store(store, fn)
  local mt = getmetatable(store)
  local name = type(mt) == "table" and mt.__name
  if type(store) ~= "userdata" or name ~= "synaptic.store" then
    error(("bad argument #1 to '%s' (synaptic.store expected, got %s)")
          :format(fn, type(name) == "string" and name or type(store)), 3)
  end
  if tostring(store):match("%(closed%)$") then error("attempt to use a closed store", 3) end
end

--- A transport-free sync engine over a store.
function p2p.sync_engine(store, config)
  check_store(store, "sync_engine")
  config = checked(config or {}, "sync_engine", 2)
  return core.sync_engine(store, config)
end

--- A node: the engine plus its transport (ZeroMQ sockets, or a NATS
-- connection with transport = "nats").
function p2p.node(store, config)
  if not core.node then error("synaptic was built without the ZeroMQ node", 2) end
  check_store(store, "node")
  config = checked(config or {}, "node", 2)
  if config.transport == "nats" then return core.nats_node(store, config) end
  return core.node(store, config)
end

return p2p
