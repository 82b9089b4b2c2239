-- A live mesh of runtimes (make bench): how long after a training step on
-- one runtime the other two use the merged weights, against the same trip
-- for a plain store write between two nodes; and what taking up one
-- peer's layer costs a runtime, against a plain get_weights of that layer,
-- as the layer's history grows. Printed, never asserted.
local synaptic = require "synaptic"

local quick = os.getenv("BENCH_QUICK") == "1"
local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local tmpdir, median, now = U.tmpdir, U.median, U.now

local FAST = { heartbeat_interval_seconds = 0.2, sync_interval_seconds = 0.5, peer_timeout_seconds = 5 }
local function conf(t) for k, v in pairs(FAST) do t[k] = v end return t end

print("\n6. live mesh — runtimes taking up peers' training")
print(("="):rep(60))

-- Three runtimes (or three plain stores) with nodes on loopback, started
-- from one store's weights.
local function three(dir, runtimes)
  if runtimes then assert(synaptic.runtime(dir .. "/n1", { seed = 7 })):close()
  else local s = assert(synaptic.open(dir .. "/n1")); s:put_weights("router", 1, synaptic.floats(384), synaptic.floats(6)); s:close() end
  os.execute(("cp -r '%s/n1' '%s/n2' && cp -r '%s/n1' '%s/n3'"):format(dir, dir, dir, dir))
  local out, addrs = {}, {}
  for i = 1, 3 do
    local p2p = conf { node_id = "n" .. i, listen = "tcp://127.0.0.1:0", peers = {}, conflict_resolution = "merge" }
    for j = 1, i - 1 do p2p.peers[j] = addrs[j] end
    if runtimes then
      out[i] = assert(synaptic.runtime(dir .. "/n" .. i, { seed = 7, sync_with_peers = true, p2p = p2p }))
      addrs[i] = out[i]:node():address()
    else
      local store = assert(synaptic.open(dir .. "/n" .. i))
      out[i] = { store = store, node = assert(synaptic.node(store, p2p)) }
      addrs[i] = out[i].node:address()
    end
  end
  return out
end

-- latency: a step on member 1 until members 2 and 3 use it
do
  local trials = quick and 8 or 25
  local dir = tmpdir()
  local rts = three(dir, true)
  for _ = 1, 100 do for _, rt in ipairs(rts) do rt:poll(2) end end
  local rt_ms, local_ms = {}, {}
  for t = 1, trials do
    local t0 = now()
    rts[1]:train("zebra lantern quartz velvet", "mathematics")
    rts[1]:poll(0)
    local_ms[t] = (now() - t0) * 1000
    local hlc, origin = rts[1].store:current_identity("router", 1)
    local got = {}
    while not (got[2] and got[3]) and now() - t0 < 5 do
      for i = 2, 3 do
        rts[i]:poll(0)
        local s = rts[i].seen.router[1]
        got[i] = got[i] or (s.hlc == hlc and s.origin == origin)   -- its gate is that write
      end
      rts[1]:poll(0)
    end
    rt_ms[t] = (now() - t0) * 1000
  end
  for _, rt in ipairs(rts) do rt:close() end
  dir = tmpdir()
  local nodes = three(dir, false)
  for _ = 1, 100 do for _, n in ipairs(nodes) do n.node:poll(2) end end
  local node_ms = {}
  local w = synaptic.floats(384)
  for t = 1, trials do
    w[1] = t
    local t0 = now()
    nodes[1].store:put_weights("router", 1, w, synaptic.floats(6))
    nodes[1].node:poll(0)
    local hlc, origin = nodes[1].store:current_identity("router", 1)
    local got = {}
    while not (got[2] and got[3]) and now() - t0 < 5 do
      for i = 2, 3 do
        nodes[i].node:poll(0)
        local h, o = nodes[i].store:current_identity("router", 1)
        got[i] = got[i] or (h == hlc and o == origin)
      end
      nodes[1].node:poll(0)
    end
    node_ms[t] = (now() - t0) * 1000
  end
  for _, n in ipairs(nodes) do n.node:close(); n.store:close() end
  local r, b = median(rt_ms), median(node_ms)
  print(("  one training step on a runtime until both peers' runtimes use it (median of %d): %.2f ms"
         .. " (the step and its write, 4 layers, on the first: %.2f ms);"):format(trials, r, median(local_ms)))
  print(("  a plain put_weights until both peers' stores hold it: %.2f ms; runtime/plain %.2fx")
        :format(b, r / b))
end

-- taking up one changed layer, against get_weights of it, as history grows
do
  print("  taking up one peer's layer in rt:poll() vs store:get_weights of it (median of 15):")
  print(("  %-8s %-12s %10s %14s %10s"):format("history", "layer", "take-up us", "get_weights us", "ratio"))
  for _, scale in ipairs(quick and { 1, 10 } or { 1, 10, 100 }) do
    for _, layer in ipairs { { "router", 1 }, { "coding", 2 } } do
      local dir = tmpdir()
      local rt = assert(synaptic.runtime(dir .. "/db", { seed = 1, max_weight_versions = 0 }))
      local store = rt.store
      local w, b = store:get_weights(layer[1], layer[2])
      for i = 1, scale do w[1] = i; store:put_weights(layer[1], layer[2], w, b) end
      rt:poll()
      local up, get = {}, {}
      for t = 1, 15 do
        w[1] = -t
        store:put_weights(layer[1], layer[2], w, b)      -- as a peer's update lands
        local t0 = now()
        local n = rt:poll()
        up[t] = (now() - t0) * 1e6
        assert(n == 1)
        t0 = now()
        store:get_weights(layer[1], layer[2])
        get[t] = (now() - t0) * 1e6
      end
      local u, g = median(up), median(get)
      print(("  %-8s %-12s %10.1f %14.1f %9.2fx"):format(scale .. "x", layer[1] .. "/" .. layer[2] .. " (" .. #w .. ")",
            u, g, u / g))
      rt:close()
      U.rmdir(dir)
    end
  end
  -- and the check every process() makes when nothing changed
  local dir = tmpdir()
  local rt = assert(synaptic.runtime(dir .. "/db", { seed = 1 }))
  local n = quick and 2000 or 20000
  local t0 = now()
  for _ = 1, n do rt:poll() end
  local idle = (now() - t0) / n * 1e6
  t0 = now()
  for _ = 1, n do rt:process("Implement a function") end
  local proc = (now() - t0) / n * 1e6
  print(("  rt:poll() with nothing changed: %.2f us, %.1f%% of a process() (%.1f us)"):format(idle, 100 * idle / proc, proc))
  rt:close()
  U.rmdir(dir)
end

U.cleanup()
