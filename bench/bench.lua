--- synaptic benchmarks: speed and size as RATIOS against baselines measured
-- side by side in the same run. Prints tables; asserts nothing about timing.
--
--   make bench                 full run (~2-3 minutes on 2 cores)
--   BENCH_QUICK=1 make bench   short run (~20 s), same tables, fewer repetitions
--
-- Throughput is MiB/s of raw float32 bytes (2^20 bytes per MiB), wall time
-- from synaptic.now(); every figure is the median of several runs.
local synaptic = require "synaptic"

local dir = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
local function load(name) return dofile(dir .. name .. ".lua") end
local U = load("util")
local D = load("data")
local M = load("methods")

local MiB, now, median = U.MiB, U.now, U.median

local quick = (os.getenv("BENCH_QUICK") or "") ~= "" and os.getenv("BENCH_QUICK") ~= "0"

local SIZES = { 256 * 1024, 1024 * 1024 }          -- floats: 1 MiB and 4 MiB
local function size_name(n) return string.format("%d MiB", n * 4 // MiB) end

-- puts per timed run, and runs per figure (median taken over runs)
local PLAN = quick and {
  [SIZES[1]] = { puts = 6, runs = 3 },
  [SIZES[2]] = { puts = 3, runs = 3 },
} or {
  [SIZES[1]] = { puts = 32, runs = 5 },
  [SIZES[2]] = { puts = 10, runs = 5 },
}
-- SQLite through luasql is ~10x slower to put (hex literals): fewer puts
local MEDIUM_PLAN = quick and {
  [SIZES[1]] = { puts = 4, runs = 2 },
  [SIZES[2]] = { puts = 2, runs = 2 },
} or {
  [SIZES[1]] = { puts = 8, runs = 3 },
  [SIZES[2]] = { puts = 3, runs = 3 },
}
-- lua-cjson is two orders of magnitude slower: a few puts, one or two runs
local SLOW_PLAN = quick and {
  [SIZES[1]] = { puts = 2, runs = 1 },
} or {
  [SIZES[1]] = { puts = 3, runs = 2 },
  [SIZES[2]] = { puts = 2, runs = 1 },
}
local CODEC_REPS = quick and 3 or 5

local t_start = now()
local cpu_start = os.clock()

-- ---- measuring ------------------------------------------------------------------

-- One state per method: its open handle, temp dir, versions written and the
-- per-run figures.
local function open_states(entries, w)
  local S = {}
  for i, e in ipairs(entries) do
    local d = U.tmpdir()
    local h = e.m.open(d)
    local st = { e = e, plan = e.plan, dir = d, h = h, written = {},
                 put = {}, get = {}, put_excl = {}, cpu = {}, put_cpu = {}, get_cpu = {} }
    -- one untimed put + get: first-call costs (file creation, table setup)
    st.written[1] = h:put(w)
    h:get(st.written[1])
    S[i] = st
  end
  return S
end

-- The states in the order run `run` visits them: rotated by one each run.
local function rotation(S, run)
  local order = {}
  for k = 0, #S - 1 do order[#order + 1] = S[(run - 1 + k) % #S + 1] end
  return order
end

local function timed_puts(S, w, maxruns)
  local bytes = #w * 4
  for run = 1, maxruns do
    for _, st in ipairs(rotation(S, run)) do
      if run <= st.plan.runs then
        local h, puts = st.h, st.plan.puts
        collectgarbage()
        local excl0 = h.excluded or 0
        local c0, t0 = os.clock(), now()
        for _ = 1, puts do st.written[#st.written + 1] = h:put(w) end
        local dt, dc = now() - t0, os.clock() - c0
        st.put[run] = puts * bytes / dt / MiB
        st.put_cpu[run] = puts * bytes / dc / MiB
        st.cpu[run] = dc / dt
        if h.excluded then
          st.put_excl[run] = puts * bytes / (dt - (h.excluded - excl0)) / MiB
        end
      end
    end
  end
end

-- versions to read: evenly spread over all written, shifted per run
local function pick(st, run, k)
  local n = #st.written
  local stride = math.max(1, n // st.plan.puts)
  return st.written[1 + ((k - 1) * stride + run - 1) % n]
end

local function timed_gets(S, bytes, maxruns)
  for run = 1, maxruns do
    for _, st in ipairs(rotation(S, run)) do
      if run <= st.plan.runs then
        collectgarbage()
        local c0, t0 = os.clock(), now()
        for k = 1, st.plan.puts do st.h:get(pick(st, run, k)) end
        st.get[run] = st.plan.puts * bytes / (now() - t0) / MiB
        st.get_cpu[run] = st.plan.puts * bytes / (os.clock() - c0) / MiB
      end
    end
  end
end

-- Checks, reopens, closes and removes one method's store; its medians.
local function finish_state(st, w)
  local bytes = #w * 4
  local h, n = st.h, #st.written
  -- correctness, untimed: what comes back is what went in
  local r = { ok = (h:get(st.written[n]) == w), versions = n }
  if h.stored_bytes then r.stored = h:stored_bytes(st.written[n]) / bytes end
  if st.e.m.reopenable and h.reopen then
    collectgarbage()
    local t0 = now()
    h:reopen()
    r.reopen_s = now() - t0
    t0 = now()
    for k = 1, st.plan.puts do h:get(pick(st, 1, k)) end
    r.cold = st.plan.puts * bytes / (now() - t0) / MiB
  end
  h:close()
  r.disk = U.disk_bytes(st.dir)
  U.rmdir(st.dir)
  r.put, r.get, r.cpu = median(st.put), median(st.get), median(st.cpu)
  r.put_cpu, r.get_cpu = median(st.put_cpu), median(st.get_cpu)
  if #st.put_excl > 0 then r.put_excl = median(st.put_excl) end
  return r
end

--- Measure several methods on the same array, interleaved run by run (each
-- run visits every method, in a rotating order) so that the VM's noisy page
-- cache and writeback affect all of them alike.
-- Per method: `plan.runs` timed runs of `plan.puts` puts of distinct versions;
-- then as many runs of gets over versions spread across everything written
-- (warm); then close + reopen and one pass of gets (engine caches empty, OS
-- page cache still warm).
local function measure_group(entries, w)
  local S = open_states(entries, w)
  local maxruns = 0
  for _, st in ipairs(S) do maxruns = math.max(maxruns, st.plan.runs) end
  timed_puts(S, w, maxruns)
  timed_gets(S, #w * 4, maxruns)
  local out = {}
  for _, st in ipairs(S) do out[st.e.key] = finish_state(st, w) end
  collectgarbage()
  return out
end

-- ---- setup -------------------------------------------------------------------

local function sh(cmd)
  local f = io.popen(cmd .. " 2>/dev/null")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s and s:gsub("%s+$", "")
end

--- The codec a store uses with compression = true, read from a record.
local function default_codec()
  local d = U.tmpdir()
  local s = assert(synaptic.open(d .. "/s"))
  s:put_weights("probe", 0, synaptic.floats({ 0.5, -0.25, 0.125, 1 }))
  local _, _, info = s:get_weights("probe", 0)
  s:close()
  U.rmdir(d)
  return info and info.codec or "shuffle"
end

local function print_banner()
  print(string.format("synaptic %s benchmarks — %s, %s core(s), %s", synaptic.version,
    _VERSION, sh("nproc") or "?", quick and "QUICK (BENCH_QUICK=1)" or "full run"))
  print("Ratios are measured side by side in this run; no timing is asserted."
    .. " Load average at start: " .. (U.loadavg() or "?") .. ".")
  print("MiB/s = raw float32 bytes (2^20) per wall second; figures are medians.")
end

local function generate_weights()
  io.write("generating weights (Box-Muller, sigma 0.05; uniform [-1,1]) ... ")
  io.flush()
  local t0 = now()
  local W = D.make(SIZES, 0.05)
  print(string.format("%.1f s", now() - t0))
  return W
end

local function dist_name(dist)
  return dist == "gaussian" and "Gaussian sigma 0.05" or "uniform [-1,1]"
end

-- ---- 1. put/get throughput ----------------------------------------------------

--- The methods of section 1, and why SQLite / JSON are missing if they are.
local function throughput_methods(DEFAULT)
  local methods = {
    { key = "default", m = M.synaptic("synaptic default (" .. DEFAULT .. ", blob files)", {}) },
    { key = "default_noblob", m = M.synaptic("synaptic " .. DEFAULT .. ", blob_files=false", { blob_files = false }) },
    { key = "none", m = M.synaptic("synaptic none, blob files", { compression = "none" }) },
    { key = "none_noblob", m = M.synaptic("synaptic none, blob_files=false", { compression = "none", blob_files = false }) },
    { key = "file", m = M.file() },
    { key = "file_codec", m = M.file_codec(DEFAULT) },
    { key = "codec", m = M.codec_only(DEFAULT) },
  }
  local sq, why_sq = M.sqlite()
  -- SQLite and JSON cost does not depend on the values: Gaussian only
  if sq then methods[#methods + 1] = { key = "sqlite", m = sq, medium = true, gaussian_only = true } end
  local cj, why_cj = M.cjson()
  if cj then methods[#methods + 1] = { key = "cjson", m = cj, gaussian_only = true } end
  local skipped = {}
  if not sq then skipped[#skipped + 1] = "  (SQLite skipped: " .. why_sq .. ")" end
  if not cj then skipped[#skipped + 1] = "  (JSON skipped: " .. why_cj .. ")" end
  return methods, skipped
end

--- The methods that run on this distribution and size, each with its plan.
local function throughput_group(methods, dist, n)
  local group = {}
  for _, e in ipairs(methods) do
    local plan = (e.m.slow and SLOW_PLAN or e.medium and MEDIUM_PLAN or PLAN)[n]
    if plan and (dist == "gaussian" or not e.gaussian_only) then
      group[#group + 1] = { key = e.key, m = e.m, plan = plan }
    end
  end
  return group
end

--- Table rows for one group's results R, ratios against the plain file.
local function throughput_rows(group, R, n)
  local rows = {}
  local base = R.file
  local function vs(x, y) return (base and x and y) and U.ratio(x / y) or "-" end
  for _, e in ipairs(group) do
    local r, plan = R[e.key], e.plan
    local note = {}
    if not r.ok then note[#note + 1] = "ROUND-TRIP MISMATCH" end
    if plan ~= PLAN[n] then note[#note + 1] = string.format("%d puts x %d run(s)", plan.puts, plan.runs) end
    if r.reopen_s then note[#note + 1] = string.format("reopen %.2fs", r.reopen_s) end
    rows[#rows + 1] = {
      e.m.name, U.rate(r.put), U.rate(r.get), U.rate(r.cold),
      vs(r.put, base and base.put), vs(r.get, base and base.get),
      U.frac(r.stored), string.format("%.2f", r.cpu), table.concat(note, "; "),
    }
    if r.put_excl then
      rows[#rows + 1] = {
        "  same, hex-encode time excluded", U.rate(r.put_excl), "", "",
        vs(r.put_excl, base and base.put), "", "", "", "engine-only estimate",
      }
    end
  end
  return rows
end

--- Measures and prints one table of section 1; returns results[key].
local function throughput_table(methods, dist, n, w)
  U.heading(string.format("1. put/get throughput — %s, %s float32 array (%d floats)",
    dist_name(dist), size_name(n), n))
  print(string.format("   %d puts of distinct versions per run, median of %d runs (interleaved"
    .. " across methods); gets read %d of the written versions (warm)", PLAN[n].puts, PLAN[n].runs,
    PLAN[n].puts))
  io.flush()
  local group = throughput_group(methods, dist, n)
  local R = measure_group(group, w)
  U.table({ "method", "put MiB/s", "get MiB/s", "get after reopen", "put vs file",
    "get vs file", "stored/raw", "cpu/wall(put)", "notes" }, throughput_rows(group, R, n))
  local base = R.file
  if base and base.cpu < 0.9 then
    print(string.format("  ! plain-file puts got only %.0f%% of a CPU: the machine is busy (load %s);"
      .. " ratios in this table are less reliable", 100 * base.cpu, U.loadavg() or "?"))
  end
  io.flush()
  return R
end

--- Section 1; returns results[dist][nfloats][key].
local function throughput_section(W, DEFAULT)
  local methods, skipped = throughput_methods(DEFAULT)
  local results = {}
  for _, dist in ipairs({ "gaussian", "uniform" }) do
    results[dist] = {}
    for _, n in ipairs(SIZES) do
      results[dist][n] = throughput_table(methods, dist, n, W[dist][n])
    end
  end
  for _, line in ipairs(skipped) do print(line) end
  print("")
  print("  cpu/wall(put): process CPU seconds per wall second while putting (>1 = RocksDB")
  print("  background threads busy; <1 = waiting on I/O or stalls). 'get after reopen': first")
  print("  read after close+open (engine caches empty, OS page cache still warm).")
  return results
end

-- ---- 2. codecs ---------------------------------------------------------------------

--- Median compress / decompress speed of one codec on w; also the bytes back.
local function measure_codec(codec, w, raw)
  local bytes = #raw
  local ct, dt, c = {}, {}, nil
  -- CPU time (os.clock): a codec is pure single-threaded CPU work, and CPU
  -- time does not count the time other processes hold the cores
  for i = 1, CODEC_REPS do
    collectgarbage()
    local t = os.clock()
    c = synaptic.compress(codec, w)
    ct[i] = os.clock() - t
  end
  local back
  for i = 1, CODEC_REPS do
    collectgarbage()
    local t = os.clock()
    back = synaptic.decompress(codec, c, bytes)
    dt[i] = os.clock() - t
  end
  local r = {
    ratio = #c / bytes,
    comp = bytes / median(ct) / MiB,
    decomp = bytes / median(dt) / MiB,
    lossless = (back == raw),
  }
  return r, back
end

local function codec_note(codec, r, w, back)
  if codec == "bf16" then
    local f = synaptic.floats(back)
    local maxabs, maxrel = 0, 0
    for i = 1, #w do
      local a, b = w[i], f[i]
      local e = math.abs(a - b)
      if e > maxabs then maxabs = e end
      if a ~= 0 and e / math.abs(a) > maxrel then maxrel = e / math.abs(a) end
    end
    return string.format("LOSSY: max abs err %.2g, max rel err %.2g", maxabs, maxrel)
  elseif not r.lossless then
    return "ROUND-TRIP MISMATCH"
  end
  return "lossless"
end

--- Measures and prints one table of section 2; returns codec -> figures.
local function codec_table(dist, w, DEFAULT)
  local raw = w:tobytes()
  U.heading(string.format("2. codecs — %s, %s (synaptic.compress/decompress, CPU time, median of %d)",
    dist_name(dist), size_name(#w), CODEC_REPS))
  local rows, res = {}, {}
  for _, codec in ipairs(synaptic.codecs()) do
    local r, back = measure_codec(codec, w, raw)
    res[codec] = r
    local note = codec_note(codec, r, w, back)
    if codec == DEFAULT then note = note .. " (default)" end
    rows[#rows + 1] = { codec, U.frac(r.ratio), U.rate(r.comp), U.rate(r.decomp), note }
  end
  U.table({ "codec", "stored/raw", "compress MiB/s", "decompress MiB/s", "notes" }, rows)
  local H = U.lane_entropy(raw)
  print(string.format("  order-0 entropy per byte lane, bits/byte (byte 0 = lowest mantissa, 3 = sign+exponent):"
    .. " %.2f %.2f %.2f %.2f -> bound %.3f of raw", H[1], H[2], H[3], H[4], (H[1] + H[2] + H[3] + H[4]) / 32))
  local dc, gz = res[DEFAULT], res.gzip
  if dc and gz then
    print(string.format("  default codec (%s) vs gzip-6: size %s, compress speed %s, decompress speed %s",
      DEFAULT, U.ratio(dc.ratio / gz.ratio), U.ratio(dc.comp / gz.comp), U.ratio(dc.decomp / gz.decomp)))
  end
  io.flush()
  return res
end

--- Section 2, on the largest size; returns codec_res[dist][codec].
local function codec_section(W, DEFAULT)
  local N4 = SIZES[#SIZES]
  local codec_res = {}
  for _, dist in ipairs({ "gaussian", "uniform" }) do
    codec_res[dist] = codec_table(dist, W[dist][N4], DEFAULT)
  end
  return codec_res
end

-- ---- 3. summary -----------------------------------------------------------------------

local function verdict(x, target, op)
  if x == nil or x ~= x then return "n/a" end
  local ok
  if op == ">=" then ok = x >= target elseif op == ">" then ok = x > target else ok = x < target end
  return ok and "meets" or "BELOW target"
end

local function summary_section(results, codec_res, DEFAULT)
  U.heading("3. summary — headline ratios (Gaussian sigma 0.05 unless noted; printed, not asserted)")
  local rows = {}
  local function add(what, x, op, target, xcpu)
    rows[#rows + 1] = { what, U.ratio(x), xcpu and U.ratio(xcpu) or "", op .. " " .. string.format("%g", target) .. "x",
      verdict(x, target, op) }
  end
  for _, n in ipairs(SIZES) do
    local R = results.gaussian[n]
    local sz = size_name(n)
    if R.default and R.file then
      add("put_weights vs plain file, " .. sz, R.default.put / R.file.put, ">=", 0.3,
        R.default.put_cpu / R.file.put_cpu)
      add("get_weights vs plain file, " .. sz, R.default.get / R.file.get, ">=", 1.0,
        R.default.get_cpu / R.file.get_cpu)
    end
    if R.default and R.sqlite then
      add("put_weights vs SQLite, " .. sz, R.default.put / R.sqlite.put, ">", 1,
        R.default.put_cpu / R.sqlite.put_cpu)
      add("get_weights vs SQLite, " .. sz, R.default.get / R.sqlite.get, ">", 1,
        R.default.get_cpu / R.sqlite.get_cpu)
      if R.sqlite.put_excl then
        add("  put vs SQLite engine-only (no hex), " .. sz, R.default.put / R.sqlite.put_excl, ">", 1)
      end
    end
  end
  for _, dist in ipairs({ "gaussian", "uniform" }) do
    local dc, gz = codec_res[dist][DEFAULT], codec_res[dist].gzip
    if dc and gz then
      local tag = dist == "gaussian" and "" or " (uniform)"
      add("default codec size vs gzip-6" .. tag, dc.ratio / gz.ratio, "<", 1)
      add("default codec compress speed vs gzip" .. tag, dc.comp / gz.comp, ">=", 3)
      add("default codec decompress speed vs gzip" .. tag, dc.decomp / gz.decomp, ">=", 3)
    end
  end
  U.table({ "headline", "ratio (wall)", "ratio (CPU)", "target", "verdict (wall)" }, rows)
  print("  ratio (CPU): the same, from process CPU seconds (all threads, so RocksDB's background")
  print("  flushes count against it); steadier than wall time when the machine is shared.")
  print("  Codec rows are CPU time already (section 2).")
end

local function time_breakdown_table(results, DEFAULT)
  print("")
  print("  where the time goes: CPU ms (all threads) per MiB of raw weights, Gaussian, from section 1.")
  print("  codec: the codec alone in memory; engine: the same store with compression none (envelope,")
  print("  CRC32, WAL + CRC32c, memtable/blob files, copies); rest = total - codec - engine (negative")
  print("  when writing the smaller compressed record saves more than the codec path's extra copies).")
  local function ms(rate) return rate and rate > 0 and 1000 / rate or nil end
  local function fmt(x) return x and string.format("%.2f", x) or "-" end
  local trows = {}
  for _, n in ipairs(SIZES) do
    local R = results.gaussian[n]
    local d, none, f, c = R.default, R.none, R.file, R.codec
    if d and none and f and c then
      for _, op in ipairs({ "put", "get" }) do
        local k = op .. "_cpu"
        local total, codec, engine = ms(d[k]), ms(c[k]), ms(none[k])
        trows[#trows + 1] = { op .. ", " .. size_name(n), fmt(total),
          string.format("%s (%.0f%%)", fmt(codec), 100 * codec / total), fmt(engine),
          fmt(total - codec - engine), fmt(ms(f[k])) }
      end
    end
  end
  U.table({ "default store", "total", "codec (" .. DEFAULT .. ")", "engine (none)", "rest",
    "plain file" }, trows)
end

local function blob_files_table(results, DEFAULT)
  print("")
  print("  blob_files (true vs false), same codec:")
  local brows = {}
  for _, dist in ipairs({ "gaussian", "uniform" }) do
    for _, n in ipairs(SIZES) do
      local R = results[dist][n]
      for _, pair in ipairs({ { "default", "default_noblob", DEFAULT }, { "none", "none_noblob", "none" } }) do
        local a, b = R[pair[1]], R[pair[2]]
        if a and b then
          brows[#brows + 1] = {
            string.format("%s, %s, %s", dist, size_name(n), pair[3]),
            U.ratio(a.put / b.put), U.ratio(a.get / b.get),
            (a.cold and b.cold) and U.ratio(a.cold / b.cold) or "-",
            (a.reopen_s and b.reopen_s) and string.format("%.2fs / %.2fs", a.reopen_s, b.reopen_s) or "-",
          }
        end
      end
    end
  end
  U.table({ "case", "put (blob/noblob)", "get", "get after reopen", "reopen time blob / noblob" }, brows)
end

local function main()
  print_banner()
  local DEFAULT = default_codec()
  local W = generate_weights()
  local results = throughput_section(W, DEFAULT)
  local codec_res = codec_section(W, DEFAULT)
  summary_section(results, codec_res, DEFAULT)
  time_breakdown_table(results, DEFAULT)
  blob_files_table(results, DEFAULT)
  print("")
  print(string.format("total: %.1f s wall, %.1f s CPU (all threads); load average at end: %s",
    now() - t_start, os.clock() - cpu_start, U.loadavg() or "?"))
end

local ok, err = xpcall(main, debug.traceback)
U.cleanup()
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end
