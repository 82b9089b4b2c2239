--- What the commands print: plain lines, JSON, sizes, times and the
-- progress line. Everything goes to stdout; errors are run()'s business.
local cjson = require "cjson"

local output = {}

-- Our own cjson instance, so settings never leak into a caller's cjson.
local json = cjson.new()
output.null = json.null

function output.one_line(s)
  return (tostring(s):gsub("%s*\n%s*", " "):gsub("%s+$", ""))
end

function output.out(fmt, ...)
  io.stdout:write(select("#", ...) > 0 and fmt:format(...) or fmt, "\n")
end

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

-- lua-cjson 2.1.0 encodes an empty table as {} and prints every number with
-- %.14g. So: lists go through array(), whose empty case becomes a marker
-- string replaced by [] after encoding; integers too large for 14 digits
-- (hybrid logical clocks) are emitted as strings rather than rounded.
local ARRAY = {}
local EMPTY_ARRAY = "\0synaptic-empty-array\0"
local EMPTY_ARRAY_PATTERN = json.encode(EMPTY_ARRAY):gsub("%p", "%%%0")

function output.array(t)
  return setmetatable(t or {}, ARRAY)
end

local function jsonable(v)
  if v == json.null then
    return v
  elseif type(v) == "table" then
    if getmetatable(v) == ARRAY and #v == 0 then return EMPTY_ARRAY end
    local c = {}
    for k, x in pairs(v) do c[k] = jsonable(x) end
    return c
  elseif math.type(v) == "integer" and (v > 1e14 or v < -1e14) then
    return tostring(v)
  elseif type(v) == "userdata" or type(v) == "function" then
    return tostring(v)
  end
  return v
end

function output.encode_json(v)
  local s = json.encode(jsonable(v))
  return (s:gsub(EMPTY_ARRAY_PATTERN, "[]"))
end

function output.print_json(v)
  io.stdout:write(output.encode_json(v), "\n")
end

-- The same for a JSON object whose key order matters: keys and values are
-- still encoded by cjson, only the order is ours. entries: list of
-- {key, value}.
function output.ordered_object(entries)
  local parts = {}
  for i, e in ipairs(entries) do
    parts[i] = json.encode(e[1]) .. ":" .. output.encode_json(e[2])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

---------------------------------------------------------------------------
-- Human-readable values
---------------------------------------------------------------------------

function output.human(bytes)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local n, u = bytes, 1
  while n >= 1024 and u < #units do n, u = n / 1024, u + 1 end
  if u == 1 then return ("%d B"):format(bytes) end
  return ("%.2f %s"):format(n, units[u])
end

function output.iso_time(t)
  if type(t) ~= "number" then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

function output.shape_text(shape)
  if not shape then return "-" end
  return table.concat(shape, "x")
end

local function stdout_is_tty()
  return os.execute("test -t 1") == true
end

local function clock_text(seconds)
  seconds = math.floor(seconds + 0.5)
  if seconds >= 3600 then
    return ("%d:%02d:%02d"):format(seconds // 3600, seconds // 60 % 60, seconds % 60)
  end
  return ("%d:%02d"):format(seconds // 60, seconds % 60)
end

local function amount(n, unit)
  if unit == "bytes" then return output.human(n) end
  return tostring(math.floor(n))
end

-- "label  [#####.....]  42%  12.10 MiB/28.80 MiB  5.20 MiB/s  ETA 0:03"
local function bar_line(text, unit, done, total, elapsed)
  local frac = total > 0 and math.min(done / total, 1) or 1
  local width = 20
  local filled = math.floor(frac * width + 0.5)
  local parts = { text, " [", ("#"):rep(filled), ("."):rep(width - filled), "] ",
                  ("%3d%%  "):format(math.floor(frac * 100)),
                  amount(done, unit), "/", amount(total, unit), unit == "bytes" and "" or " " .. unit }
  local rate = elapsed > 0 and done / elapsed or 0
  if rate > 0 then
    parts[#parts + 1] = "  " .. amount(rate, unit) .. "/s"
    if done < total then parts[#parts + 1] = "  ETA " .. clock_text((total - done) / rate) end
  end
  return table.concat(parts)
end

local erase_active   -- the drawn progress line's eraser, for a failure mid-way

-- Erases a progress line left by a command that failed mid-way.
function output.end_progress()
  if erase_active then erase_active() end
end

-- A status line on a terminal that turns into a progress bar (percent,
-- amount, rate, ETA) once the work reports progress, erased when the work
-- is done. Drawn only when stdout is a terminal and the output is not
-- --json. Returns done() (erases it) and update(done, total), the
-- function to pass as a progress callback; unit: "bytes", "records",
-- "layers".
function output.progress(args, text, unit)
  if args.json or not stdout_is_tty() then return function() end, function() end end
  local now = require("synaptic").now
  local started, drawn = now(), -1
  io.stdout:write(text, " ...")
  io.stdout:flush()
  local function update(done, total)
    local t = now()
    -- at most ten redraws a second, but always the last one
    if t - drawn < 0.1 and done < total then return end
    drawn = t
    io.stdout:write("\r\27[K", bar_line(text, unit or "bytes", done, total, t - started))
    io.stdout:flush()
  end
  erase_active = function()
    erase_active = nil
    io.stdout:write("\r\27[K")
    io.stdout:flush()
  end
  return erase_active, update
end

return output
