--- Disk follows live data (issue 17, item 1): blocks allocated on disk by a
-- store, open and after a clean close, side by side with a plain file
-- overwritten in place holding the same live bytes. Sizes, not timings;
-- each row also shows the figure as a ratio of the plain file.
--
--   make bench            (one part of it, ~10 s)
--   BENCH_QUICK=1         fewer saves of the 32 MiB model
local synaptic = require "synaptic"

local dir = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
local U = dofile(dir .. "util.lua")
local MiB = U.MiB

local quick = (os.getenv("BENCH_QUICK") or "") ~= "" and os.getenv("BENCH_QUICK") ~= "0"

local function allocated(p)
  local f = io.popen("du -s --block-size=1 '" .. p:gsub("'", "'\\''") .. "' 2>/dev/null")
  local n = tonumber((f:read("a") or ""):match("^(%d+)"))
  f:close()
  return n
end

local function layer(n, seed)
  local w = synaptic.floats(n)
  local x = seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    w[i] = x / 2147483648 - 0.5
  end
  return w
end

--- A plain file holding `live` bytes, overwritten `saves` times in place.
local function plain(live, saves)
  local d = U.tmpdir()
  local chunk = string.rep("\1\2\3\4", live // 4)
  for _ = 1, saves do
    local f = assert(io.open(d .. "/model.bin", "wb"))
    f:write(chunk)
    f:close()
  end
  local n = allocated(d)
  U.rmdir(d)
  return n
end

--- A store after `saves` puts of `layers` layers of `n` floats.
local function store(n, layers, saves, keep)
  local d = U.tmpdir()
  local s = assert(synaptic.open(d .. "/db", { max_weight_versions = keep }))
  local ws = {}
  for l = 1, layers do ws[l] = layer(n, l) end
  for i = 1, saves do
    for l = 1, layers do
      ws[l][1] = i
      assert(s:put_weights("e", l - 1, ws[l]))
    end
  end
  local open = allocated(d)
  s:close()
  local closed = allocated(d)
  U.rmdir(d)
  return open, closed
end

U.heading("Disk follows live data: blocks on disk, open and closed (vs a plain file)")
local rows = {}
local function row(name, live, saves, open, closed)
  local base = plain(live, saves)
  rows[#rows + 1] = { name, ("%.2f MiB"):format(live / MiB), ("%.1f MiB"):format(open / MiB),
    ("%.1f MiB"):format(closed / MiB), ("%.1f MiB"):format(base / MiB),
    U.ratio(open / base), U.ratio(closed / base) }
end

row("3 floats, 1 put", 12, 1, store(3, 1, 1, 0))
row("256 KiB layer x1200, keep 2", 2 * 262144, 1200, store(65536, 1, 1200, 2))
local saves = quick and 20 or 60
row(("32 MiB model x%d, keep 1"):format(saves), 32 * MiB, saves, store(262144, 32, saves, 1))
U.table({ "store", "live", "open", "closed", "plain file", "open / file", "closed / file" }, rows)
print("  live: the bytes the versions kept hold; plain file: the same bytes overwritten in place")
print("  (the store keeps max_weight_versions of each layer, the file one copy)")
U.cleanup()
