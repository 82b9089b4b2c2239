--- Small helpers for the benchmarks: timing, statistics, temp dirs, tables.
local synaptic = require "synaptic"

local M = {}

M.MiB = 1024 * 1024

--- Wall seconds (sub-millisecond precision) from the C core.
M.now = synaptic.now

function M.median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- ---- temp dirs ---------------------------------------------------------------

local made = {}

local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- A fresh empty directory named after os.tmpname(); removed by cleanup().
function M.tmpdir()
  local p = os.tmpname()   -- creates the file: reuse its unique name for a dir
  os.remove(p)
  assert(os.execute("mkdir -p " .. shq(p)), "cannot create " .. p)
  made[#made + 1] = p
  return p
end

--- Remove one directory made by tmpdir() (and only those).
function M.rmdir(p)
  for i, q in ipairs(made) do
    if q == p then
      os.execute("rm -rf " .. shq(p))
      table.remove(made, i)
      return
    end
  end
  error("rmdir: " .. tostring(p) .. " was not made by tmpdir()")
end

function M.cleanup()
  for i = #made, 1, -1 do os.execute("rm -rf " .. shq(made[i])) end
  made = {}
end

--- Bytes on disk under a path (apparent sizes), via du.
function M.disk_bytes(p)
  local f = io.popen("du -sb " .. shq(p) .. " 2>/dev/null")
  if not f then return nil end
  local out = f:read("a") or ""
  f:close()
  return tonumber(out:match("^(%d+)"))
end

--- Shannon entropy (bits per byte, order 0) of each of the 4 byte lanes of
-- little-endian float32 data: what a lane shuffle + entropy coder can reach.
function M.lane_entropy(s)
  local c1, c2, c3, c4 = {}, {}, {}, {}
  for i = 0, 255 do c1[i], c2[i], c3[i], c4[i] = 0, 0, 0, 0 end
  local byte = string.byte
  for i = 1, #s - 3, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    c1[a] = c1[a] + 1; c2[b] = c2[b] + 1; c3[c] = c3[c] + 1; c4[d] = c4[d] + 1
  end
  local n = #s // 4
  local out = {}
  for k, cnt in ipairs({ c1, c2, c3, c4 }) do
    local h = 0
    for i = 0, 255 do
      local p = cnt[i] / n
      if p > 0 then h = h - p * math.log(p, 2) end
    end
    out[k] = h
  end
  return out
end

--- "1-min 5-min 15-min" load averages, or nil off Linux.
function M.loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return nil end
  local s = f:read("l")
  f:close()
  return s and s:match("^(%S+ %S+ %S+)")
end

-- ---- formatting -------------------------------------------------------------

function M.rate(x)
  if x == nil or x ~= x then return "-" end
  if x >= 100 then return string.format("%.0f", x) end
  if x >= 10 then return string.format("%.1f", x) end
  return string.format("%.2f", x)
end

function M.ratio(x)
  if x == nil or x ~= x then return "-" end
  if x >= 100 then return string.format("%.0fx", x) end
  if x >= 10 then return string.format("%.1fx", x) end
  return string.format("%.2fx", x)
end

function M.frac(x)
  if x == nil or x ~= x then return "-" end
  return string.format("%.3f", x)
end

--- Print rows (lists of strings) under headers; first column left-aligned.
function M.table(headers, rows, indent)
  indent = indent or "  "
  local w = {}
  for i, h in ipairs(headers) do w[i] = #h end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do w[i] = math.max(w[i] or 0, #tostring(c)) end
  end
  local function line(r)
    local out = {}
    for i = 1, #headers do
      local c = tostring(r[i] == nil and "" or r[i])
      local pad = string.rep(" ", w[i] - #c)
      out[i] = i == 1 and (c .. pad) or (pad .. c)
    end
    return indent .. table.concat(out, "  ")
  end
  print(line(headers))
  local sep = {}
  for i = 1, #headers do sep[i] = string.rep("-", w[i]) end
  print(indent .. table.concat(sep, "  "))
  for _, r in ipairs(rows) do print(line(r)) end
end

function M.heading(s)
  print("")
  print(s)
  print(string.rep("=", #s))
end

return M
