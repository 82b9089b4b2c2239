--- Costs that should grow with what changed, not with what is stored:
-- growth tables (1x, 10x, 100x versions, experts or store size), each figure
-- a RATIO against a baseline measured in the same run. Prints tables;
-- asserts nothing about timing.
--
--   make bench                  (this file is its last part, ~1-2 minutes)
--   BENCH_QUICK=1 make bench    fewer repetitions, smaller 100x rows
--
-- Sections:
--   1. a layer with 2, 20, 200 versions of 1 MiB, flushed: get of the
--      newest vs a get by number, put of the next version (and with
--      max_weight_versions trimming) vs a put to a new layer, and what
--      weight_versions and layers cost next to one 1 MiB get; 1b. the same
--      with 100, 1k, 10k versions of 4 KiB, where the history walks show
--   2. create_checkpoint of 18 layers x 1, 10, 100 versions (64 KiB each)
--   3. list_experts over 100, 1k, 10k experts vs SQLite SELECT DISTINCT
--   4. verify of a 1.25, 12.5, 125 MiB store vs reading and CRC32-ing
--      every file (bench/crc_files.c), then with 20 checkpoints pinning it
--   5. an incremental backup after adding 1 MiB vs a full backup, same sizes
-- Blob reads (RocksDB's perf context) are printed where they should be 0.
local synaptic = require "synaptic"
local core = require "synaptic.core"

local dir = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
local U = dofile(dir .. "util.lua")
local now, median, ratio, MiB = U.now, U.median, U.ratio, U.MiB

local quick = (os.getenv("BENCH_QUICK") or "") ~= "" and os.getenv("BENCH_QUICK") ~= "0"
local REPS = quick and 5 or 11
local CRC_FILES = os.getenv("CRC_FILES") or "build/crc_files"
local blob_reads = core._blob_reads   -- SYNAPTIC_TEST_HOOKS (make bench sets it)

local t_start = now()

local function floats(n, seed)
  local w = synaptic.floats(n)
  local x = seed or 1
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    w[i] = x / 2147483648 - 0.5
  end
  return w
end

local W1M = floats(262144, 7)      -- 1 MiB
local W64K = floats(16384, 11)     -- 64 KiB
local W8K = floats(2048, 13)       -- 8 KiB: a blob (min_blob_size is 4 KiB)

--- Median seconds of f() over reps calls.
local function time(f, reps)
  local t = {}
  for i = 1, reps or REPS do
    local t0 = now()
    f(i)
    t[#t + 1] = now() - t0
  end
  return median(t)
end

--- Median seconds of f() and of g(), called alternately (so both see the
-- same load, caches and background work).
local function time2(f, g, reps)
  local tf, tg = {}, {}
  for i = 1, reps or REPS do
    local t0 = now(); f(i); tf[i] = now() - t0
    t0 = now(); g(i); tg[i] = now() - t0
  end
  return median(tf), median(tg)
end

--- Blob values read while f() runs.
local function blobs(f)
  if not blob_reads then f(); return "-" end
  local n0 = blob_reads()
  f()
  return (blob_reads() - n0)
end

local function open(d, opts)
  return assert(synaptic.open(d, opts))
end

-- ---- 1. lookups and puts on a layer with many versions --------------------------

local function versions_row(n)
  local d = U.tmpdir()
  local s = open(d .. "/db")
  for _ = 1, n do s:put_weights("e", 0, W1M) end
  assert(s:compact())                 -- flushed: every version in blob files
  s:close()
  s = open(d .. "/db")
  s:get_weights("e", 0)               -- warm the table readers
  local mid = math.max(1, n // 2)
  local get_latest, get_v = time2(function() s:get_weights("e", 0) end,
                                  function() s:get_weights("e", 0, mid) end, 2 * REPS)
  local b_latest = blobs(function() s:get_weights("e", 0) end)
  local wv = time(function() s:weight_versions("e", 0) end)
  local ly = time(function() s:layers("e") end)
  local b_meta = blobs(function()
    s:weight_versions("e", 0); s:layers("e"); s:list_experts()
  end)
  -- puts alternate, so both see the same memtable and compaction state
  local t_next, t_new = time2(function() s:put_weights("e", 0, W1M) end,
                              function(i) s:put_weights("e", 1000 + i, W1M) end)
  s:close()
  -- trimming: the same history, max_weight_versions = 2 (all but 2 records gone)
  s = open(d .. "/db", { max_weight_versions = 2 })
  local t_trim, t_new2 = time2(function() s:put_weights("e", 0, W1M) end,
                               function(i) s:put_weights("e", 2000 + i, W1M) end)
  s:close()
  U.rmdir(d)
  return {
    n = n, latest = get_latest / get_v, b_latest = b_latest,
    put = t_next / t_new, trim = t_trim / t_new2,
    wv = wv / get_v, layers = ly / get_v, b_meta = b_meta,
  }
end

local function section_versions()
  U.heading("1. A layer with many versions of 1 MiB, flushed (ratios; target <= 1.2x at 200)")
  local rows = {}
  for _, n in ipairs({ 2, 20, 200 }) do
    local r = versions_row(n)
    rows[#rows + 1] = { string.format("%d versions", r.n), ratio(r.latest), tostring(r.b_latest),
      ratio(r.put), ratio(r.trim), string.format("%.4f", r.wv), string.format("%.4f", r.layers),
      tostring(r.b_meta) }
  end
  U.table({ "layer", "get newest / get v(n/2)", "blobs read", "put next / put new layer",
    "trimming put / put new", "weight_versions / get", "layers / get", "blobs read (meta)" }, rows)
  print("  blobs read: weight payloads RocksDB read for one get (1 = only the one returned);")
  print("  (meta): for weight_versions + layers + list_experts together (should be 0)")
end

-- small layers: what is left once payloads cost little is the history itself
local W4K = floats(1024, 17)

local function small_row(n)
  local d = U.tmpdir()
  local s = open(d .. "/db")
  for i = 1, n, 500 do
    s:batch(function(b) for _ = i, math.min(n, i + 499) do b:put_weights("e", 0, W4K) end end)
  end
  assert(s:compact())
  s:close()
  s = open(d .. "/db")
  local reps = 5 * REPS
  local latest, byv = time2(function() s:get_weights("e", 0) end,
                            function() s:get_weights("e", 0, n // 2) end, reps)
  local put, new = time2(function() s:put_weights("e", 0, W4K) end,
                         function(i) s:put_weights("e", 1000 + i, W4K) end, reps)
  s:close()
  s = open(d .. "/db", { max_weight_versions = 2 })
  local trim, new2 = time2(function() s:put_weights("e", 0, W4K) end,
                           function(i) s:put_weights("e", 2000 + i, W4K) end, reps)
  s:close()
  U.rmdir(d)
  return { n = n, latest = latest / byv, put = put / new, trim = trim / new2 }
end

local function section_small()
  U.heading("1b. The same with a 4 KiB layer (flat is the target)")
  local rows = {}
  for _, n in ipairs({ 100, 1000, quick and 3000 or 10000 }) do
    local r = small_row(n)
    rows[#rows + 1] = { string.format("%d versions", r.n), ratio(r.latest), ratio(r.put), ratio(r.trim) }
  end
  U.table({ "layer", "get newest / get v(n/2)", "put next / put new layer", "trimming put / put new" }, rows)
  print("  get v(n/2) walks n/2 history entries to find the number: get newest is the one to watch")
end

-- ---- 2. create_checkpoint ------------------------------------------------------------

local LAYERS = 18

local function checkpoint_row(v, get_1m)
  local d = U.tmpdir()
  local s = open(d .. "/db")
  for _ = 1, v do
    s:batch(function(b) for l = 0, LAYERS - 1 do b:put_weights("e", l, W64K) end end)
  end
  assert(s:compact())
  s:close()
  s = open(d .. "/db")
  local b = blobs(function() s:create_checkpoint { system_version = "warm" } end)
  local t = time(function(i) s:create_checkpoint { system_version = "c" .. i } end)
  s:close()
  U.rmdir(d)
  return t, b
end

local function get_1m_time()
  local d = U.tmpdir()
  local s = open(d .. "/db")
  s:put_weights("one", 0, W1M)
  assert(s:compact())
  s:get_weights("one", 0)
  local t = time(function() s:get_weights("one", 0) end)
  s:close()
  U.rmdir(d)
  return t
end

local function section_checkpoint(get_1m)
  U.heading(string.format("2. create_checkpoint of %d layers x N versions of 64 KiB, flushed", LAYERS))
  local rows, base = {}, nil
  for _, v in ipairs({ 1, 10, quick and 50 or 100 }) do
    local t, b = checkpoint_row(v, get_1m)
    base = base or t
    rows[#rows + 1] = { string.format("%d versions", v), ratio(t / base), ratio(t / get_1m), tostring(b) }
  end
  U.table({ "layers", "checkpoint / with 1 version", "checkpoint / one 1 MiB get", "blobs read" }, rows)
  print("  targets: <= 1.5x the 1-version checkpoint at 50 versions, <= one 1 MiB get")
end

-- ---- 3. list_experts -------------------------------------------------------------------

local function sqlite_distinct(d, n)
  local ok, luasql = pcall(require, "luasql.sqlite3")
  if not ok then return nil end
  local env = luasql.sqlite3()
  local conn = assert(env:connect(d .. "/w.db"))
  local pragma = assert(conn:execute("PRAGMA journal_mode=WAL"))
  if type(pragma) == "userdata" then pragma:close() end
  assert(conn:execute("CREATE TABLE weights (expert TEXT NOT NULL, layer INTEGER NOT NULL, " ..
    "version INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (expert, layer, version))"))
  assert(conn:execute("BEGIN"))
  for i = 1, n do
    assert(conn:execute(string.format(
      "INSERT INTO weights VALUES ('expert-%06d', 0, 1, zeroblob(8192))", i)))
  end
  assert(conn:execute("COMMIT"))
  local got
  local t = time(function()
    local cur = assert(conn:execute("SELECT DISTINCT expert FROM weights ORDER BY expert"))
    got = {}
    local row = cur:fetch()
    while row do got[#got + 1] = row; row = cur:fetch() end
    cur:close()
  end)
  assert(#got == n, "sqlite: wrong count")
  conn:close()
  env:close()
  return t
end

local function experts_row(n)
  local d = U.tmpdir()
  local s = open(d .. "/db")
  local per = 500
  for i = 1, n, per do
    s:batch(function(b)
      for j = i, math.min(n, i + per - 1) do b:put_weights(string.format("expert-%06d", j), 0, W8K) end
    end)
  end
  assert(s:compact())
  s:close()
  s = open(d .. "/db")
  local got
  local b = blobs(function() got = s:list_experts() end)
  assert(#got == n, "list_experts: wrong count")
  local t = time(function() s:list_experts() end)
  s:close()
  local tq = sqlite_distinct(d, n)
  U.rmdir(d)
  return t, tq, b
end

local function section_experts()
  U.heading("3. list_experts (each expert one 8 KiB layer, flushed) vs SQLite SELECT DISTINCT")
  local rows, base = {}, nil
  for _, n in ipairs({ 100, 1000, quick and 3000 or 10000 }) do
    local t, tq, b = experts_row(n)
    base = base or t / n
    rows[#rows + 1] = { string.format("%d experts", n), tq and ratio(t / tq) or "-",
      ratio((t / n) / base), tostring(b) }
  end
  U.table({ "store", "list_experts / SQLite", "per expert, vs 100 experts", "blobs read" }, rows)
  print("  target: <= 5x SQLite at 10k experts; SQLite: luasql, PRIMARY KEY (expert, layer, version)")
end

-- ---- 4 and 5. verify and backups by store size ------------------------------------------

local function crc_baseline(path)
  local f = io.popen(CRC_FILES .. " '" .. path .. "' 2>/dev/null")
  local out = f and f:read("a") or ""
  if f then f:close() end
  local bytes, secs = out:match("^(%d+) ([%d.]+)")
  return tonumber(secs), tonumber(bytes)
end

local function fsync_time(d)
  local f = io.popen(CRC_FILES .. " --fsync '" .. d .. "' 2>/dev/null")
  local out = f and f:read("a") or ""
  if f then f:close() end
  return tonumber(out:match("^([%d.]+)"))
end

local function size_row(layers)
  local d = U.tmpdir()
  local path = d .. "/db"
  local s = open(path)
  for l = 1, layers do s:put_weights("e", l, W1M) end
  assert(s:compact())
  crc_baseline(path)                                 -- page cache warm for both
  local vreps = quick and 3 or 7
  local vt, ct = {}, {}
  for i = 1, vreps do
    local t0 = now(); assert(s:verify()); vt[i] = now() - t0
    ct[i] = crc_baseline(path)
  end
  vt = median(vt)
  local crc_t = median(ct)
  for i = 1, 20 do s:create_checkpoint { system_version = "p" .. i } end
  assert(s:compact())
  local vt_cp = {}
  for i = 1, vreps do              -- with and without, alternately: a copy without the checkpoints
    local t0 = now(); assert(s:verify()); vt_cp[i] = now() - t0
  end
  vt_cp = median(vt_cp)
  -- backups: full, then 1 MiB more, then nothing new
  local bdir = d .. "/backups"
  local t0 = now(); assert(s:backup(bdir)); local full = now() - t0
  local inc = {}
  for i = 1, 3 do
    s:put_weights("e", 100000 + i, W1M)
    t0 = now(); assert(s:backup(bdir)); inc[i] = now() - t0
  end
  local nothing = {}
  for i = 1, 3 do t0 = now(); assert(s:backup(bdir)); nothing[i] = now() - t0 end
  s:close()
  U.rmdir(d)
  return { mib = layers, verify = crc_t and vt / crc_t, verify_cp = vt_cp / vt, verify_ms = vt,
           full = full, inc = median(inc), none = median(nothing) }
end

local function section_sizes()
  local sizes = quick and { 1, 10, 50 } or { 1, 10, 100 }
  local rows = {}
  for _, n in ipairs(sizes) do rows[#rows + 1] = size_row(n) end
  U.heading("4. verify vs reading and CRC32-ing every file of the store (crc_files, zlib)")
  local t = {}
  for _, r in ipairs(rows) do
    t[#t + 1] = { string.format("%d MiB", r.mib), ratio(r.verify),
      string.format("%.2f", r.verify_ms * 1000 / r.mib), ratio(r.verify_cp) }
  end
  U.table({ "store", "verify / read+crc32", "verify ms per MiB", "with 20 checkpoints / without" }, t)
  print("  (without: before the checkpoints were made; same store, same files after a compaction)")
  print("  target: <= 2x read+crc32, flat with size and checkpoints")
  U.heading("5. incremental backup after adding 1 MiB vs a full backup of the store")
  local fsync = fsync_time(U.tmpdir())
  t = {}
  for _, r in ipairs(rows) do
    t[#t + 1] = { string.format("%d MiB", r.mib), string.format("%.0f ms", r.full * 1000),
      ratio(r.inc / r.full), string.format("%.0f ms", r.inc * 1000), ratio(r.none / r.full),
      fsync and string.format("%.0f", r.none / fsync) or "-" }
  end
  U.table({ "store", "full backup", "incremental (+1 MiB) / full", "incremental",
    "nothing new / full", "nothing new, in fsyncs" }, t)
  print(string.format("  target: <= 0.03x at 128 MiB. A backup writes and fsyncs a meta file and the"
    .. " MANIFEST, CURRENT and OPTIONS copies, and fsyncs 5 directories; one fsync of a new"
    .. " 4 KiB file here: %s ms", fsync and string.format("%.2f", fsync * 1000) or "?"))
end

local function main()
  print("synaptic growth benchmarks" .. (quick and " (BENCH_QUICK)" or ""))
  print("  load average: " .. (U.loadavg() or "?"))
  if not blob_reads then print("  (blob counts need SYNAPTIC_TEST_HOOKS=1)") end
  section_versions()
  section_small()
  local get_1m = get_1m_time()
  section_checkpoint(get_1m)
  section_experts()
  section_sizes()
  print(string.format("\ngrowth bench: %.0f s", now() - t_start))
end

local ok, err = xpcall(main, debug.traceback)
U.cleanup()
if not ok then error(err, 0) end
