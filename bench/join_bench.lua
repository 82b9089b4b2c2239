-- Joining (make bench): a node that connects to a peer holding a 64 MiB
-- model it lacks, with default settings (sync_interval_seconds 30,
-- heartbeat_interval_seconds 10), until it holds every layer; against
-- putting the same layers into a local store, run side by side. Catch-up
-- starts when the connection comes up, so the intervals should not show.
-- Printed, never asserted.
local synaptic = require "synaptic"
local helpers = require "helpers"

local quick = os.getenv("BENCH_QUICK") == "1"
local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local now = U.now

print("\n9. joining — a new node and a peer holding a model it lacks (default settings)")
print(("="):rep(60))

local layers = quick and 16 or 64
local big = synaptic.floats(helpers.weights(262144, 11))   -- 1 MiB of float32

local function local_put(dir)
  local c = assert(synaptic.open(dir .. "/c"))
  local t0 = now()
  for l = 1, layers do c:put_weights("model", l, big, {}) end
  local t = now() - t0
  c:close()
  return t
end

local function join(dir)
  local a = assert(synaptic.open(dir .. "/a"))
  for l = 1, layers do a:put_weights("model", l, big, {}) end
  local na = assert(synaptic.node(a, { node_id = "A", listen = "tcp://127.0.0.1:0" }))
  na:poll(0)
  local b = assert(synaptic.open(dir .. "/b"))
  local t0 = now()
  local nb = assert(synaptic.node(b, { node_id = "B", peers = { na:address() } }))
  local done = false
  while not done and now() - t0 < 120 do
    na:poll(1); nb:poll(1)
    done = b:get_weights("model", layers) ~= nil
    for l = 1, layers do done = done and b:get_weights("model", l) ~= nil end
  end
  local t = now() - t0
  assert(done, "the joiner did not get the model in 120 s")
  na:close(); nb:close(); a:close(); b:close()
  return t
end

local rows = {}
for trial = 1, quick and 1 or 3 do
  local dir = U.tmpdir()
  rows[trial] = { join = join(dir), put = local_put(dir) }
  U.rmdir(dir)
end
local j, p = {}, {}
for i, r in ipairs(rows) do j[i], p[i] = r.join, r.put end
local jm, pm = U.median(j), U.median(p)
print(("  %-52s %9s %9s %7s"):format("measure (median of " .. #rows .. ")", "join", "local", "ratio"))
print(("  %-52s %8.2fs %8.2fs %6.2fx"):format(("%d MiB (%d x 1 MiB layers): B connects -> B has all"):format(layers, layers),
      jm, pm, jm / pm))
print("  target: <= 2x the local puts (issue 17)")
U.cleanup()
