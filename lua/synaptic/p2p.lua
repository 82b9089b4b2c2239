--- synaptic.p2p: P2P configuration (validation and defaults) and the Lua
-- side of sync engines and nodes. The C core (sn_sync, sn_net) reads only
-- tables that went through p2p.config, so the error messages for bad
-- configs live here, in one place.
local core = require "synaptic.core"

local p2p = {}

local STRATEGIES = {
  latest_timestamp = true, highest_version = true, prefer_local = true,
}

-- name -> {type, default, check (returns an error string or nil)}
local function positive(v) if not (v > 0) or v ~= v or v == math.huge then return "must be a positive finite number" end end
local function count(lo, hi)
  return function(v)
    if math.type(v) ~= "integer" and (v ~= math.floor(v)) then return "must be an integer" end
    if v < lo or v > hi then return ("must be between %d and %d"):format(lo, hi) end
  end
end

local function endpoint(v)
  if type(v) ~= "string" then return "must be a string" end
  if not v:match("^tcp://[^:]+:%d+$") and not v:match("^tcp://%[[%x:]+%]:%d+$")
     and not v:match("^tcp://[^:]+:%*$") and not v:match("^ipc://.+") and not v:match("^inproc://.+") then
    return "must be an endpoint like tcp://127.0.0.1:7000"
  end
end

local FIELDS = {
  node_id = { "string", nil, function(v)
    if #v == 0 or #v > 256 or v:find("\0", 1, true) then return "must be 1 to 256 bytes without NUL" end
  end },
  listen = { "string", nil, endpoint },
  peers = { "table", nil, nil },                 -- checked below
  sync_interval_seconds = { "number", 30, positive },
  max_peers = { "number", 10, count(1, 4096) },
  conflict_resolution = { { "string", "function" }, "latest_timestamp", function(v)
    if type(v) == "string" and not STRATEGIES[v] then
      return "must be latest_timestamp, highest_version, prefer_local or a function"
    end
  end },
  enable_weight_sync = { "boolean", true },
  enable_config_sync = { "boolean", true },
  enable_checkpoint_sync = { "boolean", true },
  heartbeat_interval_seconds = { "number", 10, positive },
  peer_timeout_seconds = { "number", 60, positive },
  max_message_bytes = { "number", 64 * 1024 * 1024, count(4096, 1024 * 1024 * 1024) },
  chunk_bytes = { "number", nil, count(1024, 1024 * 1024 * 1024) },
  max_reassembly_bytes = { "number", 256 * 1024 * 1024, count(1024, 4 * 1024 * 1024 * 1024) },
  chunk_timeout_seconds = { "number", 60, positive },
  max_clock_offset_ms = { "number", 500, function(v) if not (v >= 0) or v == math.huge then return "must be a finite number >= 0" end end },
  send_hwm = { "number", 1000, count(1, 1000000) },
  recv_hwm = { "number", 1000, count(1, 1000000) },
  insecure = { "boolean", false },
  curve = { "table", nil, nil },                 -- checked below
}

local Z85_KEY = "^[%w%.%-:%+=%^!/%*%?&<>%(%)%[%]{}@%%%$#]+$"

local function z85(v)
  return type(v) == "string" and #v == 40 and v:match(Z85_KEY) ~= nil
end

local validated = setmetatable({}, { __mode = "k" })

local function fail(level, msg)
  error("p2p_config: " .. msg, level + 1)
end

--- Validate a P2PSyncConfig table and return a new table with defaults.
-- A validated config prints as what it is, secrets left out.
local Config = { __name = "synaptic.p2p_config" }
Config.__tostring = function(c)
  local peers = {}
  for i, p in ipairs(c.peers) do peers[i] = p.endpoint end
  return ("synaptic.p2p_config (node %s, listen %s, peers {%s}, %s%s)")
    :format(c.node_id or "auto", c.listen or "none", table.concat(peers, ", "),
            type(c.conflict_resolution) == "function" and "custom resolver" or c.conflict_resolution,
            c.curve and ", CURVE" or "")
end

function p2p.config(t)
  if validated[t] then return t end
  if type(t) ~= "table" then
    error("bad argument #1 to 'p2p_config' (table expected, got " .. type(t) .. ")", 2)
  end
  local out = {}
  for k in pairs(t) do
    if type(k) ~= "string" or not FIELDS[k] then
      fail(2, "unknown field " .. tostring(k))
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
        fail(2, ("%s must be a %s, not a %s"):format(name, table.concat(types, " or "), type(v)))
      end
      local err = spec[3] and spec[3](v)
      if err then fail(2, name .. " " .. err) end
    end
    out[name] = v
  end
  if out.peer_timeout_seconds <= out.heartbeat_interval_seconds then
    fail(2, "peer_timeout_seconds must be longer than heartbeat_interval_seconds")
  end
  for _, k in ipairs { "sync_interval_seconds", "heartbeat_interval_seconds", "peer_timeout_seconds",
                       "chunk_timeout_seconds" } do
    if out[k] > 1e9 then fail(2, k .. " is too large") end
  end
  out.max_peers = math.tointeger(out.max_peers)
  out.max_message_bytes = math.tointeger(out.max_message_bytes)
  -- a chunk and its one-entry message must fit in one message
  local room = out.max_message_bytes - 1024
  if out.chunk_bytes == nil then
    out.chunk_bytes = math.min(1024 * 1024, room)
  elseif out.chunk_bytes > room then
    fail(2, "chunk_bytes must be at most max_message_bytes - 1024")
  end
  out.chunk_bytes = math.tointeger(out.chunk_bytes)
  if out.max_reassembly_bytes < out.chunk_bytes then
    fail(2, "max_reassembly_bytes must be at least chunk_bytes")
  end
  out.max_reassembly_bytes = math.tointeger(out.max_reassembly_bytes)
  out.send_hwm = math.tointeger(out.send_hwm)
  out.recv_hwm = math.tointeger(out.recv_hwm)

  if out.curve ~= nil then
    local c = out.curve
    for k in pairs(c) do
      if k ~= "public" and k ~= "secret" and k ~= "authorized" and k ~= "server_key" then
        fail(2, "unknown field curve." .. tostring(k))
      end
    end
    if not z85(c.public) then fail(2, "curve.public must be a 40-character Z85 key") end
    if not z85(c.secret) then fail(2, "curve.secret must be a 40-character Z85 key") end
    if c.server_key ~= nil and not z85(c.server_key) then
      fail(2, "curve.server_key must be a 40-character Z85 key")
    end
    local auth = {}
    if c.authorized ~= nil then
      if type(c.authorized) ~= "table" then fail(2, "curve.authorized must be a list of public keys") end
      for i, k in ipairs(c.authorized) do
        if not z85(k) then fail(2, ("curve.authorized[%d] must be a 40-character Z85 key"):format(i)) end
        auth[i] = k
      end
    end
    out.curve = { public = c.public, secret = c.secret, server_key = c.server_key, authorized = auth }
  end

  local peers = {}
  for i, p in ipairs(out.peers or {}) do
    if type(p) == "string" then
      local err = endpoint(p)
      if err then fail(2, ("peers[%d] %s"):format(i, err)) end
      peers[i] = { endpoint = p, public = out.curve and out.curve.server_key or nil }
    elseif type(p) == "table" then
      for k in pairs(p) do
        if k ~= "endpoint" and k ~= "public" then fail(2, ("unknown field peers[%d].%s"):format(i, tostring(k))) end
      end
      local err = endpoint(p.endpoint)
      if err then fail(2, ("peers[%d].endpoint %s"):format(i, err)) end
      if p.public ~= nil and not z85(p.public) then
        fail(2, ("peers[%d].public must be a 40-character Z85 key"):format(i))
      end
      peers[i] = { endpoint = p.endpoint, public = p.public or (out.curve and out.curve.server_key) }
    else
      fail(2, ("peers[%d] must be an endpoint string or {endpoint=, public=}"):format(i))
    end
    if out.curve and not peers[i].public then
      fail(2, ("peers[%d] needs a public key under CURVE (or set curve.server_key)"):format(i))
    end
  end
  if #peers > out.max_peers then fail(2, "more peers listed than max_peers") end
  out.peers = peers

  if out.listen and not out.curve and not out.insecure then
    local host = out.listen:match("^tcp://([^:]+):") or out.listen:match("^tcp://%[([%x:]+)%]:")
    if host and host ~= "127.0.0.1" and host ~= "localhost" and host ~= "::1" then
      fail(2, "refusing to listen on " .. out.listen .. " without CURVE; set curve, or insecure = true")
    end
  end
  validated[out] = true
  return setmetatable(out, Config)
end

--- A transport-free sync engine over a store.
function p2p.sync_engine(store, config)
  return core.sync_engine(store, p2p.config(config or {}))
end

--- A ZeroMQ node: the engine plus sockets.
function p2p.node(store, config)
  if not core.node then error("synaptic was built without the ZeroMQ node", 2) end
  return core.node(store, p2p.config(config or {}))
end

return p2p
