-- Runtime benchmarks (make bench): process() throughput, checkpoint cost as
-- weight bytes grow (pins, not copies), and the cost of an auto-save.
-- Printed, never asserted.
local synaptic = require "synaptic"

local quick = os.getenv("BENCH_QUICK") == "1"
local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local tmpdir, median = U.tmpdir, U.median

local QUERIES = {
  "Why does the sky look blue? Explain the reason.",
  "Implement a function to debug this program",
  "What is 12 * 7 + 3 = ?",
  "Use the tool to run and execute the script",
  "Translate this sentence into another language",
  "Summarise the context of our previous conversation. Then continue.",
}

print("\n4. runtime — process(), checkpoints, auto-save")
print(("="):rep(60))

-- process() on one core
do
  local dir = tmpdir()
  local rt = assert(synaptic.runtime(dir .. "/db", { auto_save_interval = 1e9 }))
  local n = quick and 5000 or 30000
  local runs = {}
  for r = 1, 3 do
    local t0 = os.clock()
    for i = 1, n do rt:process(QUERIES[i % 6 + 1]) end
    runs[r] = n / (os.clock() - t0)
  end
  local qps = median(runs)
  -- the numeric part alone, to show what the Lua orchestration costs
  local core = require "synaptic.core"
  local t0 = os.clock()
  for i = 1, n do
    local q = QUERIES[i % 6 + 1]
    rt.gate:forward(core.features(q, 64))
    rt.experts.coding:forward(core.features(q, 96))
    rt.experts.reasoning:forward(core.features(q, 64))
  end
  local core_qps = n / (os.clock() - t0)
  print(("  process(): %.0f calls/s on one core (target >= 20000: %.2fx); "
         .. "numeric core alone %.0f/s, so Lua orchestration is %.0f%% of a call")
        :format(qps, qps / 20000, core_qps, 100 * (1 - qps / core_qps)))
  rt:close()
  U.rmdir(dir)
end

-- checkpoint creation as weight bytes grow: pins, not copies
do
  print("  checkpoint creation for 6 experts x 3 layers as weight bytes grow (median of 15):")
  print(("  %-8s %12s %14s %16s %12s"):format("scale", "weight MiB", "checkpoint ms", "copy-all ms", "copy/pin"))
  for _, scale in ipairs(quick and { 1, 10 } or { 1, 10, 100 }) do
    local dir = tmpdir()
    local store = assert(synaptic.open(dir .. "/db"))
    local per_layer = 1024 * scale
    local w = synaptic.floats(per_layer)
    for i = 1, per_layer do w[i] = (i % 97) * 0.001 end
    for e = 1, 6 do for l = 1, 3 do store:put_weights("e" .. e, l, w) end end
    local times, copies = {}, {}
    for r = 1, 15 do
      local t0 = synaptic.now()
      local id = store:create_checkpoint { system_version = "bench" }
      times[r] = synaptic.now() - t0
      store:delete_checkpoint(id)
    end
    for r = 1, 3 do   -- what a copying checkpoint would cost: read and rewrite every layer
      local t0 = synaptic.now()
      store:batch(function(b)
        for e = 1, 6 do for l = 1, 3 do b:put_weights("c" .. e, l, (store:get_weights("e" .. e, l))) end end
      end)
      copies[r] = synaptic.now() - t0
    end
    local tc, tcopy = median(times), median(copies)
    print(("  %-8s %12.1f %14.2f %16.2f %11.1fx"):format(scale .. "x", 18 * per_layer * 4 / 2^20,
          tc * 1000, tcopy * 1000, tcopy / tc))
    store:close()
    U.rmdir(dir)
  end
end

-- auto-save: a flush after one training step versus one process() call
do
  local dir = tmpdir()
  local rt = assert(synaptic.runtime(dir .. "/db", { auto_save_interval = 1e9 }))
  local flushes, steps = {}, {}
  for r = 1, quick and 10 or 40 do
    local t0 = synaptic.now()
    rt:train(QUERIES[r % 6 + 1], "coding")
    steps[r] = synaptic.now() - t0
    t0 = synaptic.now()
    rt:flush()
    flushes[r] = synaptic.now() - t0
  end
  local f, s = median(flushes), median(steps)
  print(("  auto-save of the layers one train() step dirtied: %.2f ms (a train() step: %.3f ms; "
         .. "flush/step %.0fx)"):format(f * 1000, s * 1000, f / s))
  rt:close()
  U.rmdir(dir)
end
