-- Child process for 37-disk_full_spec.lua, so that an abort inside RocksDB
-- shows up as a failed exit status instead of killing busted.
--
--   lua5.4 spec/support/disk_full_child.lua MODE DBPATH [FILLER]
--
-- fill:    writes states and weights until a write fails, then three more;
--          prints "ack state <i>" / "ack weights <layer> <version> <i>"
--          per acknowledged write and "fail <message>" per failed one.
--          With FILLER, removes that file after the failures and retries
--          on the same handle until a write succeeds ("recovered <tries>").
-- read N:  opens read-only and prints state k1..kN that it finds and every
--          weight version ("state <i> <value>", "weights <layer> <version> <n>").
-- write:   opens read-write, prints "open ok" or "open fail <message>",
--          then tries one write: "write ok" / "write fail <message>".
local M = {}

-- the value written as state k<i>, and the weights of write i
function M.state(i) return ("%d:"):format(i) .. string.rep("s", 700) end
function M.weights(i)
  local t = {}
  for j = 1, 1500 + (i % 3) * 1500 do t[j] = ((i * 7919 + j) % 1000) / 1000 end
  return t
end

if ... == "disk_full_child" then return M end

local synaptic = require "synaptic"
local mode, db, filler = arg[1], arg[2], arg[3]
local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end
local OPTS = { write_buffer_mb = 1, cache_mb = 1 }

if mode == "fill" then
  local s = assert(synaptic.open(db, OPTS))
  local failures, i = 0, 0
  while failures < 4 and i < 100000 do
    i = i + 1
    if i % 4 == 0 then
      local v, err = s:put_weights("full", i % 3, M.weights(i))
      if v then say("ack weights %d %d %d", i % 3, v, i) else failures = failures + 1; say("fail %s", err) end
    else
      local ok, err = s:put_state("k" .. i, M.state(i))
      if ok then say("ack state %d", i) else failures = failures + 1; say("fail %s", err) end
    end
  end
  if filler then
    os.remove(filler)
    for try = 1, 100 do
      if s:put_state("after", "freed") then say("recovered %d", try) break end
      os.execute("sleep 0.1")
    end
  end
  s:close()
  say("closed")
elseif mode == "read" then
  local s = assert(synaptic.open(db, { read_only = true, cache_mb = 1 }))
  for i = 1, tonumber(filler) do
    local v = s:get_state("k" .. i)
    if v then say("state %d %s", i, v) end
  end
  for layer = 0, 2 do
    for _, v in ipairs(assert(s:weight_versions("full", layer))) do
      local w = assert(s:get_weights("full", layer, v))
      say("weights %d %d %d", layer, v, #w)
    end
  end
  s:close()
elseif mode == "write" then
  local s, err = synaptic.open(db, OPTS)
  if not s then say("open fail %s", err) return end
  say("open ok")
  local ok, werr = s:put_state("later", "x")
  if ok then say("write ok") else say("write fail %s", werr) end
  s:close()
end
