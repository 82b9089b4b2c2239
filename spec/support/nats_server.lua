-- A nats-server on loopback for the NATS specs: a free port of its own
-- choosing (-p -1, read back from its log), waited for by condition (the
-- "ready" line), killed by pid. start() returns nil, reason when the
-- server cannot be started (the spec is then pending with the reason).
local helpers = require "helpers"

local M = {}
local Server = {}
Server.__index = Server

local function sh(cmd) return os.execute(cmd) == true end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local d = f:read("a")
  f:close()
  return d
end

local function wait_for(cond, rounds)
  for _ = 1, rounds or 200 do
    local v = cond()
    if v then return v end
    sh("sleep 0.025")
  end
end

function Server:url() return ("nats://127.0.0.1:%d"):format(self.port) end

function Server:pid()
  local f = io.open(self.dir .. "/pid")
  local pid = f and f:read("n")
  if f then f:close() end
  return pid
end

-- (Re)starts the server; the same port on a restart, so clients reconnect.
function Server:start()
  os.remove(self.dir .. "/log")
  os.remove(self.dir .. "/pid")
  local args = ("-a 127.0.0.1 -p %d -l %s -P %s"):format(self.port or -1, helpers.shq(self.dir .. "/log"),
                                                        helpers.shq(self.dir .. "/pid"))
  -- -V: the server's trace, payloads included: what the server sees
  if self.trace then args = args .. " -V" end
  if self.jetstream then args = args .. " -js -sd " .. helpers.shq(self.dir .. "/js") end
  if not sh("nats-server " .. args .. " >/dev/null 2>&1 &") then return nil, "cannot run nats-server" end
  local port = wait_for(function()
    local log = read(self.dir .. "/log")
    if log:find("Server is ready", 1, true) then
      return tonumber(log:match("Listening for client connections on [%d%.]+:(%d+)"))
    end
  end)
  if not port then
    local log = read(self.dir .. "/log")
    self:stop()
    return nil, "nats-server did not start: " .. (log:match("[^\n]*$") or "")
  end
  self.port = port
  return self
end

function Server:log() return read(self.dir .. "/log") end

function Server:stop()
  local pid = self:pid()
  if not pid then return end
  sh("kill " .. pid .. " 2>/dev/null")
  wait_for(function() return not sh("kill -0 " .. pid .. " 2>/dev/null") end)
  os.remove(self.dir .. "/pid")
end

-- opts.jetstream: with -js and a store directory of its own; opts.trace:
-- its log shows every message's payload (Server:log()).
function M.start(opts)
  if not sh("command -v nats-server >/dev/null 2>&1") then return nil, "nats-server is not installed (make deps)" end
  local s = setmetatable({ dir = helpers.tmpdir("nats"), jetstream = opts and opts.jetstream,
                          trace = opts and opts.trace }, Server)
  return s:start()
end

return M
