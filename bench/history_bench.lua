-- What a long history of one layer costs (make bench): catching up N
-- versions of one layer from a peer, in µs per version, against N
-- separate layers (flat: each is a short history); and the first put to a
-- new expert whose id sorts just before a long history, against a put to
-- one sorting after it. Transport-free engines, pumped in process, so the
-- figures are the store's and the engine's work, not the network's.
-- Printed, never asserted.
local synaptic = require "synaptic"

local quick = os.getenv("BENCH_QUICK") == "1"
local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local now = U.now

print("\n8. long histories — catch-up and first puts beside them")
print(("="):rep(60))

local function engines(dir)
  local a = assert(synaptic.open(dir .. "/a"))
  local b = assert(synaptic.open(dir .. "/b"))
  local cfg = { conflict_resolution = "merge", sync_interval_seconds = 1, heartbeat_interval_seconds = 1 }
  local ea = synaptic.sync_engine(a, setmetatable({ node_id = "a" }, { __index = cfg }))
  local eb = synaptic.sync_engine(b, setmetatable({ node_id = "b" }, { __index = cfg }))
  ea:add_peer("b"); eb:add_peer("a")
  return a, b, ea, eb
end

-- Pump both engines until b's digest matches a's; virtual time steps 1 s.
local function pump(ea, eb)
  local t = 0
  repeat
    t = t + 1
    assert(ea:tick(t)); assert(eb:tick(t))
    local moved = true
    while moved do
      moved = false
      for _, m in ipairs(ea:outbox()) do eb:receive("a", m.bytes); moved = true end
      for _, m in ipairs(eb:outbox()) do ea:receive("b", m.bytes); moved = true end
    end
  until ea:digest() == eb:digest() or t > 10000
end

local w, bias = synaptic.floats(16), synaptic.floats(4)

local function catch_up(n, one_layer)
  local dir = U.tmpdir()
  local a, b, ea, eb = engines(dir)
  for i = 1, n do
    w[1] = i
    if one_layer then a:put_weights("e", 1, w, bias) else a:put_weights("e" .. i, 1, w, bias) end
  end
  local t0 = now()
  pump(ea, eb)
  local us = (now() - t0) * 1e6 / n
  local ex = one_layer and "e" or ("e" .. n)
  assert(select(1, b:current_identity(ex, 1)) == select(1, a:current_identity(ex, 1)), "b did not catch up")
  ea:close(); eb:close(); a:close(); b:close()
  U.rmdir(dir)
  return us
end

print("catching up N versions (µs per version)")
print(("%8s %14s %14s %8s"):format("N", "one layer", "N layers", "ratio"))
for _, n in ipairs(quick and { 500, 1000 } or { 1000, 4000, 8000 }) do
  local one, many = catch_up(n, true), catch_up(n, false)
  print(("%8d %14.1f %14.1f %8.2f"):format(n, one, many, one / many))
end

-- A first put to expert "d" (sorts just before "e"'s history) and to "f"
-- (after it), in a store whose "e" layer was rewritten n times.
local function first_put(n)
  local dir = U.tmpdir()
  local s = assert(synaptic.open(dir .. "/s"))
  for i = 1, n do w[1] = i; s:put_weights("e", 1, w, bias) end
  local t0 = now(); s:put_weights("d", 1, w, bias)
  local before = now() - t0
  t0 = now(); s:put_weights("f", 1, w, bias)
  local after = now() - t0
  s:close()
  U.rmdir(dir)
  return before, after
end

print("\nfirst put to a new expert beside a history of n versions (ms)")
print(("%8s %14s %14s %8s"):format("n", "sorts before", "sorts after", "ratio"))
for _, n in ipairs(quick and { 2000 } or { 2000, 8000 }) do
  local before, after = first_put(n)
  print(("%8d %14.3f %14.3f %8.2f"):format(n, before * 1e3, after * 1e3, before / after))
end
-- Two nodes that share a history of n versions of one layer, then write it
-- concurrently and sync, round after round: each round both merge. The
-- merge walks back only to the writes' common base (sn_ancestry.c), so a
-- round should cost the same at any n.
local function merge_rounds(n, rounds)
  local dir = U.tmpdir()
  local a, b, ea, eb = engines(dir)
  for i = 1, n do w[1] = i; a:put_weights("e", 1, w, bias) end
  pump(ea, eb)
  local t0 = now()
  for r = 1, rounds do
    w[1] = -r; a:put_weights("e", 1, w, bias)
    w[1] = r; b:put_weights("e", 1, w, bias)
    pump(ea, eb)
  end
  local ms = (now() - t0) * 1e3 / rounds
  local ha, oa = a:current_identity("e", 1)
  local hb, ob = b:current_identity("e", 1)
  assert(ha == hb and oa == ob, "the two nodes did not converge")
  ea:close(); eb:close(); a:close(); b:close()
  U.rmdir(dir)
  return ms
end

print("\nconcurrent writes merged over a shared history of n versions (ms per round, both nodes)")
print(("%8s %14s %8s"):format("n", "round", "vs first"))
local first
for _, n in ipairs(quick and { 100, 1000 } or { 100, 1000, 10000 }) do
  local ms = merge_rounds(n, quick and 10 or 20)
  first = first or ms
  print(("%8d %14.2f %8.2f"):format(n, ms, ms / first))
end
U.cleanup()
