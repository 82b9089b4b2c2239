--- synaptic.safetensors: a pure-Lua safetensors reader and writer (writes
-- F32; reads F32, F16, BF16 and F64, with to_f32 to convert).
-- Needs lua-cjson only, not the synaptic C core.
--
--   safetensors.encode(tensors [, metadata]) -> bytes
--     tensors: list of {name = string, shape = {integers},
--                       data = little-endian F32 bytes, or any value with
--                       a :tobytes() method such as synaptic.floats}
--     metadata: optional table; keys and tostring(values) go to "__metadata__".
--     Raises if a tensor's shape does not match its data (a caller's bug).
--     Deterministic: metadata keys are sorted, tensors kept in list order.
--   safetensors.decode(bytes) -> file | nil, message
--     file = {tensors  = {[name] = {name, dtype, shape, data_offsets = {b, e}, bytes}},
--             order    = {tensor names, by data offset},
--             metadata = {[string] = string}}
--     dtype is "F32", "F16", "BF16" or "F64"; bytes are the raw
--     little-endian elements. Bad input of any kind (truncated, garbage,
--     oversized header, another dtype, tensors that overlap or leave gaps)
--     gives nil and a one-line reason; decode never raises.
--   safetensors.to_f32(tensor) -> F32 bytes | nil, message
--     A decoded tensor's elements as little-endian F32 bytes: F16 and BF16
--     exactly, F64 rounded to the nearest F32; an F64 value beyond F32's
--     range gives nil and a message naming the tensor and element.
--   safetensors.read(path) -> file | nil, message
--     decode() of the file; the message names the file.
--   safetensors.write(path, tensors [, metadata]) -> size | nil, message
--     encode() written via a temporary file and a rename, so a failure never
--     leaves a half-written file under path; size is the file's byte count.
--     Raises as encode() does on a shape that does not match its data.
--   safetensors.MAX_HEADER: the largest header decode accepts, in bytes.
--
-- File layout: an 8-byte little-endian header length N, N bytes of JSON
-- ({name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}), then
-- the tensor bytes; offsets are relative to the end of the header. We write
-- tensors back to back in the order given, and pad the header with spaces
-- so the data starts 8-byte aligned (as the reference does).
local cjson = require "cjson"

local safetensors = {}

-- Our own cjson instance, so settings never leak into a caller's cjson.
local json = cjson.new()

-- The reference implementation's bound on the header (100 MB).
safetensors.MAX_HEADER = 100 * 1000 * 1000

local F32_BYTES = 4

-- The dtypes decode accepts, with their element sizes in bytes.
local DTYPE_BYTES = { F32 = 4, F16 = 2, BF16 = 2, F64 = 8 }

local function one_line(s)
  return (tostring(s):gsub("%s*\n%s*", " "):gsub("%s+$", ""))
end

---------------------------------------------------------------------------
-- Encoding
---------------------------------------------------------------------------

-- The header is written by hand rather than by cjson so that key order is
-- ours (deterministic files), an empty shape is [] rather than {}, and
-- integers are never rounded by cjson's %.14g.
local function integer_list(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = ("%d"):format(v) end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function object(pairs_in_order)
  local parts = {}
  for i, kv in ipairs(pairs_in_order) do parts[i] = json.encode(kv[1]) .. ":" .. kv[2] end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function metadata_entry(metadata)
  local keys = {}
  for k in pairs(metadata) do keys[#keys + 1] = k end
  table.sort(keys)
  local entries = {}
  for i, k in ipairs(keys) do entries[i] = { k, json.encode(tostring(metadata[k])) } end
  return { "__metadata__", object(entries) }
end

function safetensors.encode(tensors, metadata)
  local entries, blobs, offset = {}, {}, 0
  if metadata and next(metadata) then entries[1] = metadata_entry(metadata) end
  for i, t in ipairs(tensors) do
    local bytes = type(t.data) == "string" and t.data or t.data:tobytes()
    local n = 1
    for _, d in ipairs(t.shape) do n = n * d end
    assert(n * F32_BYTES == #bytes, "tensor " .. t.name .. ": shape does not match its data")
    blobs[i] = bytes
    entries[#entries + 1] = { t.name, object {
      { "dtype", json.encode("F32") },
      { "shape", integer_list(t.shape) },
      { "data_offsets", integer_list { offset, offset + #bytes } },
    } }
    offset = offset + #bytes
  end
  local header = object(entries)
  header = header .. (" "):rep((8 - #header % 8) % 8)
  return string.pack("<I8", #header) .. header .. table.concat(blobs)
end

---------------------------------------------------------------------------
-- Decoding: every check returns nil and a reason, never raises
---------------------------------------------------------------------------

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- A JSON number that is a non-negative integer, as a Lua integer.
local function count_of(v)
  if type(v) ~= "number" then return nil end
  local i = math.tointeger(v)
  if i and i >= 0 then return i end
  return nil
end

local function shape_text(shape)
  return table.concat(shape, "x")
end

-- The header as a Lua table, and its length.
local function parse_header(data)
  if #data < 8 then
    return nil, ("file too short for a safetensors header (%d bytes)"):format(#data)
  end
  local n = string.unpack("<i8", data)
  -- a real header is a short JSON text: a length of zero or less, or of 4
  -- GiB and more, means this is not a safetensors file at all, and the number
  -- itself would only mislead
  if n <= 0 or n >= 1 << 32 then
    return nil, ("not a safetensors file: its first 8 bytes are not a header length (%s)")
                :format((data:sub(1, 8):gsub(".", function(c) return ("%02x "):format(c:byte()) end):sub(1, -2)))
  end
  if n > #data - 8 then
    return nil, ("header length %d does not fit a %d-byte file"):format(n, #data)
  end
  if n > safetensors.MAX_HEADER then
    return nil, ("header length %d is over the %d-byte limit"):format(n, safetensors.MAX_HEADER)
  end
  local text = data:sub(9, 8 + n)
  if text:sub(1, 1) ~= "{" then return nil, "header is not a JSON object" end
  local ok, header = pcall(json.decode, text)
  if not ok then return nil, "header is not valid JSON: " .. one_line(header) end
  if type(header) ~= "table" then return nil, "header is not a JSON object" end
  return header, n
end

local function check_metadata(t)
  if type(t) ~= "table" then return nil, "__metadata__ is not an object" end
  local metadata = {}
  for k, v in pairs(t) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return nil, "__metadata__ must map strings to strings"
    end
    metadata[k] = v
  end
  return metadata
end

-- The shape as a list of integers and its element count; the count is
-- bounded by the data size as it grows, so the product cannot overflow.
local function check_shape(what, shape_in, body, esize)
  if not is_list(shape_in) then return nil, what .. " has no shape list" end
  local shape, count = {}, 1
  for i, d in ipairs(shape_in) do
    local di = count_of(d)
    if not di then return nil, ("%s: shape[%d] is not a non-negative integer"):format(what, i) end
    if di > 0 and count > body // esize // di then
      return nil, ("%s: shape %s is larger than the file"):format(what, json.encode(shape_in))
    end
    shape[i], count = di, count * di
  end
  return shape, count
end

local function check_offsets(what, off, body, shape, count, dtype)
  if not is_list(off) or #off ~= 2 then return nil, what .. " has no data_offsets pair" end
  local b, e = count_of(off[1]), count_of(off[2])
  if not b or not e or b > e then
    return nil, what .. ": data_offsets are not an increasing pair of non-negative integers"
  end
  if e > body then
    return nil, ("%s: data_offsets [%d, %d] are out of range (data is %d bytes)"):format(what, b, e, body)
  end
  local want = count * DTYPE_BYTES[dtype]
  if e - b ~= want then
    return nil, ("%s: %d data bytes do not match shape %s (%d bytes of %s)")
      :format(what, e - b, shape_text(shape), want, dtype)
  end
  return { b, e }
end

-- One header entry as a tensor; data_start is the file offset of byte 0
-- of the data section.
local function check_tensor(name, t, data, data_start)
  local what = ("tensor '%s'"):format(name)
  if type(t) ~= "table" then return nil, what .. " is not an object" end
  for k in pairs(t) do
    if k ~= "dtype" and k ~= "shape" and k ~= "data_offsets" then
      return nil, ("%s has an unknown field '%s'"):format(what, tostring(k))
    end
  end
  if type(t.dtype) ~= "string" then return nil, what .. " has no dtype" end
  local esize = DTYPE_BYTES[t.dtype]
  if not esize then
    return nil, ("%s has dtype %s; only F32, F16, BF16 and F64 are supported"):format(what, t.dtype)
  end
  local body = #data - data_start
  local shape, count = check_shape(what, t.shape, body, esize)
  if not shape then return nil, count end
  local off, err = check_offsets(what, t.data_offsets, body, shape, count, t.dtype)
  if not off then return nil, err end
  return { name = name, dtype = t.dtype, shape = shape, data_offsets = off,
           bytes = data:sub(data_start + off[1] + 1, data_start + off[2]) }
end

-- Like the reference: tensors tile the data exactly, no overlap, no gap.
-- Sorts file.order by offset on the way.
local function check_tiling(file, body)
  table.sort(file.order, function(a, b)
    local x, y = file.tensors[a].data_offsets, file.tensors[b].data_offsets
    if x[1] ~= y[1] then return x[1] < y[1] end
    if x[2] ~= y[2] then return x[2] < y[2] end
    return a < b
  end)
  local pos, prev = 0, nil
  for _, name in ipairs(file.order) do
    local o = file.tensors[name].data_offsets
    if o[1] < pos then
      return nil, ("tensors '%s' and '%s' overlap"):format(prev, name)
    elseif o[1] > pos then
      return nil, ("%d bytes at data offset %d belong to no tensor"):format(o[1] - pos, pos)
    end
    pos, prev = o[2], name
  end
  if pos ~= body then
    return nil, ("%d bytes after the last tensor belong to no tensor"):format(body - pos)
  end
  return file
end

function safetensors.decode(data)
  if type(data) ~= "string" then return nil, "safetensors data must be a string" end
  local header, n = parse_header(data)
  if not header then return nil, n end
  local file = { tensors = {}, order = {}, metadata = {} }
  for name, t in pairs(header) do
    if type(name) ~= "string" then return nil, "header is not a JSON object" end
    if name == "__metadata__" then
      local metadata, err = check_metadata(t)
      if not metadata then return nil, err end
      file.metadata = metadata
    else
      local tensor, err = check_tensor(name, t, data, 8 + n)
      if not tensor then return nil, err end
      file.tensors[name] = tensor
      file.order[#file.order + 1] = name
    end
  end
  return check_tiling(file, #data - 8 - n)
end

---------------------------------------------------------------------------
-- Conversion to F32
---------------------------------------------------------------------------

-- Elements are converted CHUNK at a time: one string.unpack/pack call per
-- chunk keeps big tensors fast without exceeding Lua's argument limits.
local CHUNK = 256
local F32_MAX = 3.4028234663852886e38

-- The F32 bits of an IEEE half: every half is exactly an F32.
local function f16_bits(h)
  local sign, exp, mant = (h >> 15) << 31, (h >> 10) & 0x1f, h & 0x3ff
  if exp == 0x1f then return sign | 0x7f800000 | (mant << 13) end   -- inf, NaN
  if exp == 0 then
    if mant == 0 then return sign end
    -- subnormal: shift the leading 1 into the implicit bit
    exp = 1
    while mant & 0x400 == 0 do mant, exp = mant << 1, exp - 1 end
    mant = mant & 0x3ff
  end
  return sign | ((exp + 112) << 23) | (mant << 13)
end

-- BF16 is the top half of an F32.
local function bf16_bits(h) return h << 16 end

-- Each element read with fmt_in, mapped by convert (nil, i: out of range),
-- written with fmt_out.
local function convert(t, esize, fmt_in, fmt_out, map)
  local bytes, n = t.bytes, #t.bytes // esize
  local out = {}
  for first = 1, n, CHUNK do
    local k = math.min(CHUNK, n - first + 1)
    local vals = { string.unpack("<" .. fmt_in:rep(k), bytes, (first - 1) * esize + 1) }
    vals[k + 1] = nil   -- unpack's last value is the next position
    for i = 1, k do
      local v = map(vals[i])
      if v == nil then
        return nil, ("tensor '%s': element %d (%s) is out of F32 range"):format(t.name, first + i - 1, vals[i])
      end
      vals[i] = v
    end
    out[#out + 1] = string.pack("<" .. fmt_out:rep(k), table.unpack(vals, 1, k))
  end
  return table.concat(out)
end

local function f64_to_f32(v)
  -- finite values past F32's largest would round to infinity: refuse them
  if v == v and v ~= math.huge and v ~= -math.huge and math.abs(v) > F32_MAX then
    -- unless they round down to F32_MAX (within half an F32 ulp)
    if math.abs(v) >= F32_MAX + 2.0 ^ 103 then return nil end
    return v > 0 and F32_MAX or -F32_MAX
  end
  return v
end

function safetensors.to_f32(t)
  if type(t) ~= "table" or type(t.bytes) ~= "string" or not DTYPE_BYTES[t.dtype] then
    error("bad argument #1 to 'to_f32' (a tensor from decode expected)", 2)
  end
  if t.dtype == "F32" then return t.bytes end
  if t.dtype == "F16" then return convert(t, 2, "I2", "I4", f16_bits) end
  if t.dtype == "BF16" then return convert(t, 2, "I2", "I4", bf16_bits) end
  return convert(t, 8, "d", "f", f64_to_f32)
end

---------------------------------------------------------------------------
-- Files
---------------------------------------------------------------------------

-- An io/os error message without the file name the library put in front.
local function reason(err, ...)
  err = tostring(err)
  for _, name in ipairs { ... } do
    if err:sub(1, #name + 2) == name .. ": " then return err:sub(#name + 3) end
  end
  return err
end

function safetensors.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, ("cannot read '%s': %s"):format(path, reason(err, path)) end
  local data, rerr = f:read("a")
  f:close()
  if not data then return nil, ("cannot read '%s': %s"):format(path, reason(rerr, path)) end
  local file, derr = safetensors.decode(data)
  if not file then return nil, ("%s: %s"):format(path, derr) end
  return file
end

function safetensors.write(path, tensors, metadata)
  local data = safetensors.encode(tensors, metadata)
  -- created exclusively under an unpredictable name: a symlink planted at
  -- a guessable one would redirect the write
  local f, tmp = require("synaptic.core").temp_file(path)
  if not f then return nil, ("cannot write '%s': %s"):format(path, tmp) end
  local function failed(err, ...)
    os.remove(tmp)
    return nil, ("cannot write '%s': %s"):format(path, reason(err, ...))
  end
  local ok, werr = f:write(data)
  local cok, cerr = f:close()
  if not ok or not cok then return failed(werr or cerr, tmp) end
  local rok, rerr = os.rename(tmp, path)
  if not rok then return failed(rerr, tmp, path) end
  return #data
end

return safetensors
