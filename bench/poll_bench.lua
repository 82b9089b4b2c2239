-- Polls never block (make bench): the worst single poll of either node
-- while a burst of small updates written on A reaches B, and the first
-- poll after a peer wrote n versions of one layer; each against the
-- median poll of the same run. Real ZeroMQ nodes on loopback, one process
-- polling both. Printed, never asserted.
local synaptic = require "synaptic"

local quick = os.getenv("BENCH_QUICK") == "1"
local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local now = U.now

print("\n10. polls during bursts and after long histories")
print(("="):rep(60))

local FAST = { heartbeat_interval_seconds = 0.5, sync_interval_seconds = 2, peer_timeout_seconds = 30,
               conflict_resolution = "merge" }
local function conf(t) for k, v in pairs(FAST) do t[k] = v end return t end

local function pair(dir)
  local a = assert(synaptic.open(dir .. "/a"))
  local b = assert(synaptic.open(dir .. "/b"))
  local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
  local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
  a:put_weights("warm", 0, { 0 }, {})
  for _ = 1, 100000 do na:poll(1); nb:poll(1); if b:get_weights("warm", 0) then break end end
  return a, b, na, nb
end

-- Polls both until cond holds; the worst and median single poll (ms).
local function poll_until(na, nb, cond, limit)
  local times, worst = {}, 0
  local t0 = now()
  while not cond() and now() - t0 < limit do
    for _, n in ipairs { na, nb } do
      local t = now()
      n:poll(0)
      local d = (now() - t) * 1e3
      times[#times + 1] = d
      if d > worst then worst = d end
    end
  end
  return worst, U.median(times), now() - t0, cond()
end

do
  local n = quick and 5000 or 50000
  local dir = U.tmpdir()
  local a, b, na, nb = pair(dir)
  local w = synaptic.floats(16)
  for i = 1, n do w[1] = i; a:put_weights("burst", i % 1000, w, {}) end
  local last = a:get_weights("burst", n % 1000)
  local worst, med, total, ok = poll_until(na, nb, function()
    local got = b:get_weights("burst", n % 1000)
    return got ~= nil and got:tobytes() == last:tobytes()
  end, 600)
  print(("  burst of %d small updates: worst poll %.1f ms, median %.2f ms, B has all after %.1f s%s"):format(
    n, worst, med, total, ok and "" or " (NOT all)"))
  na:close(); nb:close(); a:close(); b:close()
  U.rmdir(dir)
end

do
  for _, n in ipairs(quick and { 100, 300 } or { 100, 300, 600 }) do
    local dir = U.tmpdir()
    local a, b, na, nb = pair(dir)
    -- B holds the layer too, so A's versions are concurrent with B's head
    b:put_weights("layer", 0, synaptic.floats(64), {})
    local w = synaptic.floats(64)
    for i = 1, n do w[1] = i; a:put_weights("layer", 0, w, {}) end
    local first = now(); nb:poll(0); na:poll(0); first = (now() - first) * 1e3
    local worst, med, total, ok = poll_until(na, nb, function() return #b:weight_versions("layer", 0) >= n + 1 end, 600)
    print(("  %4d versions written by a peer: first poll %.1f ms, worst %.1f ms, median %.2f ms, all after %.1f s%s"):format(
      n, first, math.max(first, worst), med, total, ok and "" or " (NOT all)"))
    na:close(); nb:close(); a:close(); b:close()
    U.rmdir(dir)
  end
end
U.cleanup()
