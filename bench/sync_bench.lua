-- P2P sync benchmarks (make bench): from the simulator, rounds and bytes for
-- one update to reach every node as N grows (against log2 N); bytes sent per
-- update against the update's stored record size (delta sync overhead); and
-- two real ZeroMQ nodes on loopback: updates/s and the latency of a small
-- weight update; heartbeats for discovery to turn a chain of seeds into a
-- full mesh. Printed as ratios, never asserted. BENCH_QUICK=1: smaller.
package.path = "spec/?.lua;spec/support/?.lua;" .. package.path
local synaptic = require "synaptic"
local sim = require "sim"
local helpers = require "helpers"

local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local tmpdir, rmdir, median = U.tmpdir, U.rmdir, U.median

-- Gaussian (sigma 0.05) weights, deterministic.
local function gaussian(n, seed) return synaptic.floats(helpers.weights(n, seed)) end

local quick = os.getenv("BENCH_QUICK") == "1"



local function fmt_bytes(b)
  if b >= 2^20 then return ("%.1f MiB"):format(b / 2^20) end
  if b >= 2^10 then return ("%.1f KiB"):format(b / 2^10) end
  return ("%d B"):format(b)
end

print("\n5. P2P sync — convergence, delta-sync overhead, loopback nodes")
print(("="):rep(60))

local SIMCFG = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 30,
                 max_peers = 64 }

-- 1. One update spreading through N nodes (ring + 2 random chords per node,
-- no loss): a step is one virtual second, one network hop per step.
do
  print("  one 16 KiB weight update spreading from one node to all N (simulator, no loss):")
  print(("  %6s %8s %8s %12s %14s %12s"):format("N", "steps", "log2 N", "steps/log2N", "bytes total", "bytes/node"))
  for _, n in ipairs(quick and { 5, 10, 20 } or { 10, 50, 200 }) do
    local dir = tmpdir()
    local s = sim.new { n = n, dir = dir, seed = 7, degree = 2, config = SIMCFG }
    -- quiet first: everyone has met everyone it links to
    for _ = 1, 3 do s:step() end
    local bytes0 = s.bytes
    s.nodes[1].store:put_weights("bench", 0, gaussian(4096, 1), {})
    local steps = s:run_until_agreed(500)
    local used = s.bytes - bytes0
    local lg = math.log(n, 2)
    print(("  %6d %8s %8.2f %12s %14s %12s"):format(n, steps or "n/a", lg,
          steps and ("%.2f"):format(steps / lg) or "n/a", fmt_bytes(used), fmt_bytes(used / n)))
    s:close()
    rmdir(dir)
  end
  print("  (bytes include every heartbeat sent meanwhile; steps/log2N roughly flat = O(log N) rounds)")
end

-- 2. Delta sync: bytes on the wire per update against the update's stored
-- (compressed) record size, for a live peer (eager push) and for a peer
-- that was away for K updates and catches up by anti-entropy.
do
  print("\n  bytes sent per update / the update's stored record size (delta sync; target <= 2x):")
  print(("  %-34s %10s %12s %12s %8s"):format("case", "layer", "stored", "sent", "ratio"))
  local sizes = quick and { 1024, 65536 } or { 1024, 65536, 1048576 }
  for _, floats in ipairs(sizes) do
    for _, case in ipairs { "live peer (eager push)", "peer back after 5 updates" } do
      local dir = tmpdir()
      local a = assert(synaptic.open(dir .. "/a", { write_buffer_mb = 8, cache_mb = 8 }))
      local b = assert(synaptic.open(dir .. "/b", { write_buffer_mb = 8, cache_mb = 8 }))
      local ea = synaptic.sync_engine(a, { node_id = "A", sync_interval_seconds = 1000, heartbeat_interval_seconds = 1000,
                                           peer_timeout_seconds = 5000 })
      local eb = synaptic.sync_engine(b, { node_id = "B", sync_interval_seconds = 1000, heartbeat_interval_seconds = 1000,
                                           peer_timeout_seconds = 5000 })
      ea:add_peer("B"); eb:add_peer("A")
      local t = 0
      local sent = 0
      local function pump(count)
        for _ = 1, 50 do
          local moved = 0
          for _, m in ipairs(ea:outbox()) do moved = moved + 1; if count then sent = sent + #m.bytes end; eb:receive("A", m.bytes) end
          for _, m in ipairs(eb:outbox()) do moved = moved + 1; if count then sent = sent + #m.bytes end; ea:receive("B", m.bytes) end
          if moved == 0 then return end
        end
      end
      -- a shared history first (the same layer at 3 earlier versions)
      for v = 1, 3 do a:put_weights("x", 0, gaussian(floats, v), {}) end
      t = t + 1; ea:tick(t); eb:tick(t); pump(false)
      local k = case:match("after") and 5 or 1
      local stored = 0
      for v = 1, k do
        a:put_weights("x", 0, gaussian(floats, 100 + v), {})
        stored = stored + select(3, a:get_weights("x", 0)).stored_bytes
        if k == 1 then t = t + 1; ea:tick(t); pump(true) end
      end
      if k > 1 then
        -- the writes happened while B was away: the pushes are lost, then B asks
        ea:tick(t + 1); ea:outbox()
        t = t + 2; ea:tick(t); eb:tick(t); eb:sync_now(); pump(true)
      end
      local wb = b:get_weights("x", 0)
      assert(wb and wb:tobytes() == a:get_weights("x", 0):tobytes(), "did not converge")
      print(("  %-34s %10s %12s %12s %7.3fx"):format(case, fmt_bytes(floats * 4), fmt_bytes(stored / k),
            fmt_bytes(sent / k), sent / stored))
      ea:close(); eb:close(); a:close(); b:close()
      rmdir(dir)
    end
  end
  print("  (sent = every byte both engines put on the wire from the write until quiet, requests included)")
end

-- 3. Two real nodes over TCP loopback, driven from this one thread.
do
  local dir = tmpdir()
  local a = assert(synaptic.open(dir .. "/a", { write_buffer_mb = 8 }))
  local b = assert(synaptic.open(dir .. "/b", { write_buffer_mb = 8 }))
  local fast = { heartbeat_interval_seconds = 0.5, sync_interval_seconds = 2, peer_timeout_seconds = 10 }
  local function conf(t) for k, v in pairs(fast) do t[k] = v end return t end
  local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
  local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
  local function poll_until(cond, limit)
    for _ = 1, limit or 100000 do
      na:poll(0); nb:poll(0)
      if cond() then return true end
    end
    return false
  end
  -- warm up: the connection is up and both know each other
  a:put_weights("w", 0, { 0 }, {})
  poll_until(function() return b:get_weights("w", 0) ~= nil end)
  local w = gaussian(256, 3)          -- a small layer: 1 KiB of float32
  local lat = {}
  for i = 1, quick and 20 or 200 do
    local t0 = synaptic.now and synaptic.now() or os.clock()
    local v = a:put_weights("w", 0, w, {})
    poll_until(function() local _, _, info = b:get_weights("w", 0); return info and info.version >= v end)
    lat[i] = ((synaptic.now and synaptic.now() or os.clock()) - t0) * 1000
  end
  local m = quick and 200 or 2000
  local t0 = synaptic.now and synaptic.now() or os.clock()
  local last
  for _ = 1, m do
    last = a:put_weights("w", 0, w, {})
    na:poll(0); nb:poll(0)
  end
  poll_until(function() local _, _, info = b:get_weights("w", 0); return info and info.version >= last end)
  local secs = (synaptic.now and synaptic.now() or os.clock()) - t0
  print("\n  two ZeroMQ nodes on TCP loopback, one process polling both (1 KiB weight update):")
  print(("  %-40s %12s"):format("measure", "value"))
  print(("  %-40s %12.3f"):format("median latency write -> peer has it, ms", median(lat)))
  print(("  %-40s %12.0f"):format("updates/s (writer back to back)", m / secs))
  local sa, sb = na:stats(), nb:stats()
  print(("  %-40s %12d"):format("weights received by B", sb.weights_received))
  print(("  %-40s %12d"):format("dropped (full queues)", sa.dropped + sb.dropped))
  na:close(); nb:close(); a:close(); b:close()
  rmdir(dir)
end

-- 3b. Bulk and small updates between two real nodes, against the same
-- puts into a local store: a 64 MiB model (64 layers of 1 MiB) from the
-- moment A has written it until B has all of it, and 4 KiB updates
-- delivered per second against local puts per second of the same layer.
do
  -- url: through a nats-server there (transport nats), else ZeroMQ on loopback
  local function pair(dir, url)
    local a = assert(synaptic.open(dir .. "/a"))
    local b = assert(synaptic.open(dir .. "/b"))
    local cfg = { heartbeat_interval_seconds = 0.5, sync_interval_seconds = 2, peer_timeout_seconds = 30 }
    if url then cfg.transport, cfg.nats = "nats", { url = url, subject_prefix = "synaptic.bench" } end
    local function conf(t) for k, v in pairs(cfg) do t[k] = v end return t end
    local na, nb
    if url then
      na, nb = assert(synaptic.node(a, conf { node_id = "A" })), assert(synaptic.node(b, conf { node_id = "B" }))
    else
      na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
      nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    end
    local function poll_until(cond, limit)
      for _ = 1, limit or 10000000 do
        na:poll(0); nb:poll(0)
        if cond() then return true end
      end
      return false
    end
    a:put_weights("warm", 0, { 0 }, {})
    assert(poll_until(function() return b:get_weights("warm", 0) ~= nil end), "nodes did not connect")
    return a, b, na, nb, poll_until
  end
  local now = synaptic.now
  local layers = quick and 16 or 64
  local big = gaussian(262144, 11)          -- 1 MiB of float32
  local small = gaussian(1024, 12)          -- 4 KiB
  local m = quick and 500 or 3000
  -- local puts of the same layers and updates into a fresh store
  local dir = tmpdir()
  local c = assert(synaptic.open(dir .. "/c"))
  local t0 = now()
  for l = 1, layers do c:put_weights("model", l, big, {}) end
  local local_put = now() - t0
  c:close()
  local d2 = tmpdir()
  local l2 = assert(synaptic.open(d2 .. "/l"))
  t0 = now()
  for i = 1, m do l2:put_weights("small", i % 64, small, {}) end
  local local_small = now() - t0
  l2:close()
  rmdir(d2)
  rmdir(dir)
  -- A writes the model and then the small updates; timed until B has them
  local function measure(url)
    local dir = tmpdir()
    local a, b, na, nb, poll_until = pair(dir, url)
    local r = {}
    t0 = now()
    for l = 1, layers do a:put_weights("model", l, big, {}) end
    r.a_put = now() - t0
    t0 = now()
    assert(poll_until(function() return b:get_weights("model", layers) ~= nil end), "bulk sync did not finish")
    r.sync_time = now() - t0
    t0 = now()
    local last
    for i = 1, m do last = a:put_weights("small", i % 64, small, {}) end
    r.a_small = now() - t0
    t0 = now()
    assert(poll_until(function() local _, _, info = b:get_weights("small", (m) % 64)
      return info and info.version >= last end), "small updates did not arrive")
    r.small_time = now() - t0
    r.got = nb:stats().weights_received
    na:close(); nb:close(); a:close(); b:close()
    rmdir(dir)
    return r
  end
  local function rows(title, r)
    print(("\n  bulk and small updates between two %s (one process polls both):"):format(title))
    print(("  %-52s %10s %10s %8s"):format("measure", "sync", "local", "ratio"))
    print(("  %-52s %9.2fs %9.2fs %7.2fx"):format(("%d MiB (%d x 1 MiB layers): A written -> B has all"):format(layers, layers),
          r.sync_time, local_put, r.sync_time / local_put))
    print(("  %-52s %10s %9.2fs"):format("  (A's own puts of those layers)", "", r.a_put))
    print(("  %-52s %9.0f/s %8.0f/s %7.2fx"):format(("4 KiB updates (%d): A written -> B has all"):format(m),
          m / r.small_time, m / local_small, (m / r.small_time) / (m / local_small)))
    print(("  %-52s %9.0f/s"):format("  writer and delivery together (one process)", m / (r.small_time + r.a_small)))
    print(("  %-52s %10s %8.0f/s"):format("  (A's own puts of those updates)", "", m / r.a_small))
  end
  -- the floor: the same bytes through a bare loopback TCP connection
  -- (bench/raw_tcp.c), read by the run's own parent process
  local raw_tcp
  do
    local exe = os.getenv("RAW_TCP") or "build/raw_tcp"
    local f = io.popen(exe .. " " .. layers * 1048576 .. " 2>/dev/null")
    raw_tcp = f and tonumber(f:read("l") or "")
    if f then f:close() end
  end
  local function vs_tcp(r)
    if raw_tcp then
      print(("  %-52s %9.3fs %9s %7.0fx"):format(("  raw TCP, the same %d MiB (bench/raw_tcp.c)"):format(layers), raw_tcp,
            "", r.sync_time / raw_tcp))
    end
  end
  local zmq = measure(nil)
  rows("ZeroMQ nodes on loopback", zmq)
  vs_tcp(zmq)
  print(("  targets: bulk sync <= 1.5x local puts; >= 8000 small updates/s (weights received by B: %d)"):format(zmq.got))
  -- the same through a nats-server on loopback (issue 21), when one runs here
  local ok, nats_server = pcall(require, "nats_server")
  local server, why = nil, "spec/support/nats_server.lua not found"
  if ok then server, why = nats_server.start() end
  if server then
    local nr = measure(server:url())
    server:stop()
    rows("NATS nodes through nats-server on loopback", nr)
    vs_tcp(nr)
    print(("  NATS vs ZeroMQ: bulk sync %.2fx the time, small updates %.2fx the rate (weights received by B: %d)")
          :format(nr.sync_time / zmq.sync_time, (m / nr.small_time) / (m / zmq.small_time), nr.got))
  else
    print("  NATS row skipped: " .. tostring(why))
  end
  helpers.cleanup()
end

-- 3d. Fan-out: one writer and R receivers, R = 1 and 10, over ZeroMQ (each
-- receiver dials the writer) and through one nats-server (every node on
-- the mesh subject): a 4 MiB model (16 x 256 KiB layers) from the moment
-- the writer has it until every receiver holds all of it. One process polls
-- every node, so the figures include polling eleven nodes in turn.
do
  local ok, nats_server = pcall(require, "nats_server")
  local server, why = nil, "spec/support/nats_server.lua not found"
  if ok then server, why = nats_server.start() end
  local layers, floats = 16, 65536
  local w = gaussian(floats, 21)
  local counts = quick and { 1, 4 } or { 1, 10 }
  local function fan(url, r)
    local dir = tmpdir("fan")
    local cfg = { heartbeat_interval_seconds = 0.5, sync_interval_seconds = 2, peer_timeout_seconds = 30,
                  max_peers = 16 }
    if url then cfg.transport, cfg.nats = "nats", { url = url, subject_prefix = "synaptic.fan" } end
    local function conf(t) for k, v in pairs(cfg) do t[k] = v end return t end
    local stores, nodes = {}, {}
    stores[0] = assert(synaptic.open(dir .. "/w", { write_buffer_mb = 8 }))
    nodes[0] = assert(synaptic.node(stores[0], conf { node_id = "W", listen = not url and "tcp://127.0.0.1:0" or nil }))
    for i = 1, r do
      stores[i] = assert(synaptic.open(("%s/r%02d"):format(dir, i), { write_buffer_mb = 8 }))
      nodes[i] = assert(synaptic.node(stores[i], conf { node_id = ("R%02d"):format(i),
        peers = not url and { nodes[0]:address() } or nil }))
    end
    local function poll_until(cond, limit)
      local t0 = synaptic.now()
      while synaptic.now() - t0 < limit do
        for i = 0, r do nodes[i]:poll(0) end
        if cond() then return true end
      end
      return false
    end
    local function all_have(expert, n)
      for i = 1, r do
        for l = 1, n do if not stores[i]:current_identity(expert, l) then return false end end
      end
      return true
    end
    stores[0]:put_weights("warm", 1, { 0 }, {})
    assert(poll_until(function() return all_have("warm", 1) end, 60), "receivers did not connect")
    for l = 1, layers do stores[0]:put_weights("fan", l, w, {}) end
    local t0 = synaptic.now()
    assert(poll_until(function() return all_have("fan", layers) end, 120), "fan-out did not finish")
    local t = synaptic.now() - t0
    for i = r, 0, -1 do nodes[i]:close(); stores[i]:close() end
    rmdir(dir)
    return t
  end
  print(("\n  fan-out: one writer, R receivers, a %d MiB model (%d x %d KiB layers) until every receiver has it:")
        :format(layers * floats * 4 // 1048576, layers, floats * 4 // 1024))
  print(("  %-34s %4s %10s %12s"):format("transport", "R", "time", "vs R = 1"))
  local t = {}
  for _, tr in ipairs({ "ZeroMQ (receivers dial the writer)", "NATS (one nats-server)" }) do
    local url = tr:match("^NATS") and server and server:url()
    if tr:match("^NATS") and not server then
      print("  NATS rows skipped: " .. tostring(why))
    else
      for _, r in ipairs(counts) do
        local s = fan(url or nil, r)
        t[tr .. r] = s
        print(("  %-34s %4d %9.3fs %11.2fx"):format(tr, r, s, s / t[tr .. counts[1]]))
      end
    end
  end
  if server then
    server:stop()
    local big = counts[#counts]
    print(("  NATS vs ZeroMQ at R = %d: %.2fx the time"):format(big,
          t["NATS (one nats-server)" .. big] / t["ZeroMQ (receivers dial the writer)" .. big]))
  end
  helpers.cleanup()
end

-- 3c. Growth: receiving a burst of N small updates (4 KiB layers, each
-- its own layer) between two transport-free engines, N = 1x, 10x, 100x:
-- messages per burst and receive CPU time per update (should stay flat).
do
  print("\n  receiving a burst of N 4 KiB updates (engines, no sockets; CPU time per update):")
  print(("  %-16s %10s %14s %8s"):format("N", "messages", "us / update", "vs 1x"))
  local base = quick and 30 or 100
  local first
  for _, mult in ipairs({ 1, 10, 100 }) do
    local n = base * mult
    local dir = tmpdir()
    local a = assert(synaptic.open(dir .. "/a"))
    local b = assert(synaptic.open(dir .. "/b"))
    local cfg = { sync_interval_seconds = 1000, heartbeat_interval_seconds = 1000, peer_timeout_seconds = 5000 }
    local function conf(id) local t = { node_id = id } for k, v in pairs(cfg) do t[k] = v end return t end
    local ea, eb = synaptic.sync_engine(a, conf "A"), synaptic.sync_engine(b, conf "B")
    ea:add_peer("B"); eb:add_peer("A"); ea:tick(1); eb:tick(1); ea:outbox(); eb:outbox()
    local w = gaussian(1024, 21)
    for i = 1, n do a:put_weights("burst", i, w, {}) end
    -- a tick pushes at most 1,024 entries (bounded polls): tick until done
    local msgs, now = {}, 2
    repeat
      ea:tick(now)
      local out = ea:outbox()
      table.move(out, 1, #out, #msgs + 1, msgs)
      now = now + 0.01
    until #out == 0
    local t0 = os.clock()
    for _, m in ipairs(msgs) do assert(eb:receive("A", m.bytes)) end
    local per = (os.clock() - t0) / n
    assert(eb:stats().weights_received == n, "burst not applied whole")
    first = first or per
    print(("  %-16s %10d %14.1f %7.2fx"):format(("%dx (%d)"):format(mult, n), #msgs, per * 1e6, per / first))
    ea:close(); eb:close(); a:close(); b:close()
    rmdir(dir)
  end
end

-- 4. The cost of a merge: A and B share a base of a layer, each writes a
-- version the other did not see; the time for A to apply B's entry under
-- conflict_resolution = "merge" (decode, history, the merge over the base,
-- its record) against a plain put_weights of the same layer on A.
do
  print("\n  merge of two concurrent heads over their base, against a plain put of the layer:")
  print(("  %-12s %14s %14s %8s"):format("layer", "put ms", "merge ms", "ratio"))
  for _, floats in ipairs(quick and { 16384 } or { 16384, 262144 }) do
    local puts, merges = {}, {}
    for run = 1, quick and 3 or 5 do
      local dir = tmpdir()
      local a = assert(synaptic.open(dir .. "/a"))
      local b = assert(synaptic.open(dir .. "/b"))
      local cfg = { sync_interval_seconds = 1, heartbeat_interval_seconds = 1, conflict_resolution = "merge" }
      local ea = synaptic.sync_engine(a, cfg)
      local eb = synaptic.sync_engine(b, cfg)
      ea:add_peer(eb:node_id()); eb:add_peer(ea:node_id())
      local t = 0
      local function carry(from, to, fe, te)
        for _, m in ipairs(fe:outbox()) do te:receive(fe:node_id(), m.bytes) end
      end
      a:put_weights("x", 0, gaussian(floats, 1), nil)
      for _ = 1, 4 do t = t + 1; ea:tick(t); eb:tick(t); carry(a, b, ea, eb); carry(b, a, eb, ea) end
      local t0 = os.clock()
      a:put_weights("x", 0, gaussian(floats, 2 + run), nil)
      puts[run] = os.clock() - t0
      b:put_weights("x", 0, gaussian(floats, 100 + run), nil)
      ea:outbox()               -- A's push is not delivered: B's arrives at A first
      t = t + 1
      eb:tick(t)
      local msgs = eb:outbox()
      t0 = os.clock()
      for _, m in ipairs(msgs) do ea:receive(eb:node_id(), m.bytes) end
      merges[run] = os.clock() - t0
      local _, _, info = a:get_weights("x", 0)
      assert(info.merge, "no merge happened")
      ea:close(); eb:close(); a:close(); b:close()
      rmdir(dir)
    end
    local p, m = median(puts), median(merges)
    print(("  %-12s %14.2f %14.2f %7.2fx"):format(fmt_bytes(floats * 4), p * 1000, m * 1000, m / p))
  end
  print("  (CPU time; the merge reads three records (two heads, the base) and writes one)")
end

-- 5. Discovery: N real nodes on loopback, each given only the one before it
-- as a seed (a chain), until every node has a live peer for every other.
-- Counted in heartbeats (wall time / heartbeat interval), against log2 N.
do
  print("\n  discovery: a chain of N listening nodes (one seed each) to a full mesh:")
  print(("  %6s %12s %8s %14s"):format("N", "heartbeats", "log2 N", "hb / log2 N"))
  local HB = 0.1
  for _, n in ipairs(quick and { 4, 8 } or { 4, 8, 12 }) do
    local dir = tmpdir("disc")
    local stores, nodes = {}, {}
    for i = 1, n do
      stores[i] = assert(synaptic.open(("%s/n%02d"):format(dir, i), { write_buffer_mb = 1, cache_mb = 1 }))
      nodes[i] = assert(synaptic.node(stores[i], { node_id = ("N%02d"):format(i), listen = "tcp://127.0.0.1:0",
        peers = { nodes[i - 1] and nodes[i - 1]:address() or nil }, max_peers = 32, discovery = true,
        heartbeat_interval_seconds = HB, sync_interval_seconds = 1, peer_timeout_seconds = 5 }))
    end
    local function full()
      for _, node in ipairs(nodes) do
        local alive = 0
        for _, p in ipairs(node:peers()) do if p.state == "alive" and p.last_seen then alive = alive + 1 end end
        if alive < n - 1 then return false end
      end
      return true
    end
    local t0, done = synaptic.now(), false
    while not done and synaptic.now() - t0 < 60 do
      for _, node in ipairs(nodes) do node:poll(1) end
      done = full()
    end
    local hb = (synaptic.now() - t0) / HB
    local lg = math.log(n, 2)
    print(("  %6d %12s %8.2f %14s"):format(n, done and ("%.1f"):format(hb) or "n/a", lg,
                                           done and ("%.2f"):format(hb / lg) or "n/a"))
    for i = 1, n do nodes[i]:close(); stores[i]:close() end
    rmdir(dir)
  end
  print("  (a newly dialed peer gets a heartbeat, and its sample, at once: news spreads by dials, not one hop per heartbeat)")
end
