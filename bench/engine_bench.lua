--- The store against the engine under it (make bench): put_weights and
-- get_weights of 4 KiB, 64 KiB and 1 MiB layers against raw RocksDB from C
-- (bench/raw_rocksdb.c, same options, same sizes, run as a child process
-- in the same run), and a 1 MiB put against a plain-file write from Lua;
-- then a growth table (cost per operation at 1x, 10x, 100x the records
-- held: should stay flat). Printed as ratios, never asserted.
local synaptic = require "synaptic"

local dir = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
local U = dofile(dir .. "util.lua")
local now, median = U.now, U.median

local quick = (os.getenv("BENCH_QUICK") or "") ~= "" and os.getenv("BENCH_QUICK") ~= "0"
local RAW = os.getenv("RAW_ROCKSDB") or "build/raw_rocksdb"
local RUNS = quick and 3 or 5

local SIZES = {
  { name = "4 KiB", floats = 1024, count = quick and 200 or 1000 },
  { name = "64 KiB", floats = 16384, count = quick and 100 or 400 },
  { name = "1 MiB", floats = 262144, count = quick and 10 or 40 },
}

--- Gaussian sigma 0.05, deterministic (what a trained layer looks like).
local function gaussian(n, seed)
  math.randomseed(seed)
  local t, sqrt, log, cos, random = {}, math.sqrt, math.log, math.cos, math.random
  for i = 1, n do t[i] = sqrt(-2 * log(1 - random())) * cos(6.283185307 * random()) * 0.05 end
  return synaptic.floats(t)
end

--- raw RocksDB's seconds per put and per get for values of `bytes`.
local function raw_rocksdb(bytes, count)
  local d = U.tmpdir()
  local f = io.popen(("%s %s/db %d %d %d 0"):format(RAW, d, bytes, count, RUNS))
  local out = f and f:read("a") or ""
  if f then f:close() end
  U.rmdir(d)
  return tonumber(out:match("put %d+ (%S+)")), tonumber(out:match("get %d+ (%S+)"))
end

--- synaptic's seconds per put_weights and per get_weights: RUNS runs of
-- count puts, each to a layer of its own (raw RocksDB puts distinct keys;
-- the cost of a layer's long history is growth_bench's), then count gets
-- of the latest write of those layers.
local function store_times(opts, w, count)
  local d = U.tmpdir()
  local s = assert(synaptic.open(d .. "/s", opts))
  s:put_weights("bench-expert", 0, w)     -- first-call costs, untimed
  local puts, gets = {}, {}
  for run = 1, RUNS do
    collectgarbage()
    local t0, base = now(), run * count
    for i = 1, count do s:put_weights("bench-expert", base + i, w) end
    local t1 = now()
    for i = 1, count do assert(s:get_weights("bench-expert", base + i)) end
    puts[run], gets[run] = (t1 - t0) / count, (now() - t1) / count
  end
  s:close()
  U.rmdir(d)
  return median(puts), median(gets)
end

--- A plain file per put, written from Lua (w:tobytes() and io.write).
local function file_put_time(w, count)
  local d = U.tmpdir()
  local t = {}
  for run = 1, RUNS do
    collectgarbage()
    local t0 = now()
    for i = 1, count do
      local f = assert(io.open(("%s/w%d-%d.bin"):format(d, run, i), "wb"))
      f:write(w:tobytes())
      f:close()
    end
    t[run] = (now() - t0) / count
  end
  U.rmdir(d)
  return median(t)
end

local function us(x) return x and ("%.1f"):format(x * 1e6) or "-" end

local function raw_section()
  U.heading("6. the store against raw RocksDB (same options) and a plain file")
  print(("   %d runs per figure (median); raw RocksDB: %s, C, pinned gets, no read checksum,"):format(RUNS, RAW))
  print("   WAL on, sync off, blob files, no compression; synaptic: put_weights/get_weights from Lua.")
  print("   speed ratio = raw time / synaptic time (1.00x = as fast as RocksDB itself).")
  local rows, rows_file = {}, {}
  for _, sz in ipairs(SIZES) do
    local w = gaussian(sz.floats, sz.floats)
    local rp, rg = raw_rocksdb(sz.floats * 4, sz.count)
    local dp, dg = store_times({}, w, sz.count)
    local np, ng = store_times({ compression = "none" }, w, sz.count)
    local function ratio(raw, t) return (raw and t) and U.ratio(raw / t) or "-" end
    rows[#rows + 1] = { sz.name, us(rp), us(dp), ratio(rp, dp), us(np), ratio(rp, np),
                        us(rg), us(dg), ratio(rg, dg), us(ng), ratio(rg, ng) }
    if sz.floats >= 262144 then
      local fp = file_put_time(w, sz.count)
      rows_file[#rows_file + 1] = { sz.name, us(fp), us(dp), U.ratio(fp / dp), us(np), U.ratio(fp / np),
                                    us(rp), U.ratio(fp / rp) }
    end
    io.flush()
  end
  U.table({ "size", "raw put us", "put us", "vs raw", "put none us", "vs raw",
            "raw get us", "get us", "vs raw", "get none us", "vs raw" }, rows)
  print("   (targets: 64 KiB get >= 0.5x raw, 4 KiB put >= 0.7x raw; 'none' = compression none)")
  print("")
  U.table({ "put", "plain file us", "synaptic us", "vs file", "none us", "vs file",
            "raw RocksDB us", "raw vs file" }, rows_file)
  print("   (target: a 1 MiB put >= 0.3x a plain-file write; 'raw vs file' is RocksDB's own ceiling.")
  print("   The files here are written alone, after the stores: section 1 interleaves them with the")
  print("   stores run by run, so that writeback throttling falls on both, and reads higher ratios)")
end

--- Cost per put and per get as the store holds 1x, 10x, 100x records.
local function growth_section()
  local base = quick and 100 or 200
  print("")
  print(("  growth: 4 KiB layers, 64 KiB gets, store holding N layers (%d puts timed, %d gets)"):format(base, base))
  local rows, first = {}, nil
  for _, mult in ipairs({ 1, 10, 100 }) do
    local d = U.tmpdir()
    local s = assert(synaptic.open(d .. "/s"))
    local small, big = gaussian(1024, 1), gaussian(16384, 2)
    local n = base * mult
    for lo = 1, n - base, 500 do
      s:batch(function(b)
        for i = lo, math.min(lo + 499, n - base) do b:put_weights("fill-" .. (i % 97), i, small) end
      end)
    end
    for i = 1, 4 do s:put_weights("big", i, big) end
    for i = 1, 4 do assert(s:get_weights("big", i)) end   -- first reads untimed
    collectgarbage()
    local t0 = now()
    for i = 1, base do s:put_weights("grow", i, small) end
    local t1 = now()
    for i = 1, base do assert(s:get_weights("big", 1 + i % 4)) end
    local put, get = (t1 - t0) / base, (now() - t1) / base
    first = first or { put, get }
    rows[#rows + 1] = { ("%dx (%d layers)"):format(mult, n), us(put), U.ratio(put / first[1]),
                        us(get), U.ratio(get / first[2]) }
    s:close()
    U.rmdir(d)
  end
  U.table({ "held", "4 KiB put us", "vs 1x", "64 KiB get us", "vs 1x" }, rows)
end

local ok, err = xpcall(function()
  raw_section()
  growth_section()
end, debug.traceback)
U.cleanup()
if not ok then
  io.stderr:write("engine bench failed: ", tostring(err), "\n")
  os.exit(1)
end
