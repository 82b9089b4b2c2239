-- A minimal msgpack reader/writer and zlib's CRC-32, for specs that forge
-- or damage wire messages byte by byte (the core's own codec would refuse
-- to write what they need to write). Maps keep their key order:
-- { [MAP] = { k1, k2, ... }, k1 = v1, ... }; bin(s) packs s as bin; NIL
-- is msgpack nil.
local wire = {}

local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  CRC[i] = c
end

function wire.crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = CRC[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

local BIN = {}   -- marks a string to be packed as bin
local function bin(s) return setmetatable({ s = s }, BIN) end
local NIL = setmetatable({}, { __name = "nil" })
local MAP = {}   -- a map keeps its key order: { [MAP] = {k1, k2, ...}, k1 = v1, ... }

local function unpack_mp(s, pos)
  local b = s:byte(pos)
  if b <= 0x7f then return b, pos + 1 end
  if b >= 0xe0 then return b - 256, pos + 1 end
  if (b >= 0x80 and b <= 0x8f) or b == 0xde then
    local n, p = b - 0x80, pos + 1
    if b == 0xde then n, p = string.unpack(">I2", s, pos + 1) end
    local t = { [MAP] = {} }
    for _ = 1, n do
      local k, v
      k, p = unpack_mp(s, p)
      v, p = unpack_mp(s, p)
      t[MAP][#t[MAP] + 1] = k
      t[k] = v
    end
    return t, p
  end
  if b >= 0xa0 and b <= 0xbf then return s:sub(pos + 1, pos + (b - 0xa0)), pos + 1 + (b - 0xa0) end
  if b >= 0x90 and b <= 0x9f then
    local t, p = {}, pos + 1
    for i = 1, b - 0x90 do t[i], p = unpack_mp(s, p) end
    return t, p
  end
  if b == 0xc0 then return NIL, pos + 1 end
  if b == 0xc2 then return false, pos + 1 end
  if b == 0xc3 then return true, pos + 1 end
  local fmt = ({ [0xcc] = ">I1", [0xcd] = ">I2", [0xce] = ">I4", [0xcf] = ">i8",
                 [0xd0] = ">i1", [0xd1] = ">i2", [0xd2] = ">i4", [0xd3] = ">i8", [0xcb] = ">d" })[b]
  if fmt then return string.unpack(fmt, s, pos + 1) end
  local lf = ({ [0xd9] = ">I1", [0xda] = ">I2", [0xdb] = ">I4", [0xc4] = ">I1", [0xc5] = ">I2", [0xc6] = ">I4" })[b]
  if lf then
    local n, p = string.unpack(lf, s, pos + 1)
    local v = s:sub(p, p + n - 1)
    return (b >= 0xc4 and b <= 0xc6) and bin(v) or v, p + n
  end
  if b == 0xdc or b == 0xdd then
    local n, p = string.unpack(b == 0xdc and ">I2" or ">I4", s, pos + 1)
    local t = {}
    for i = 1, n do t[i], p = unpack_mp(s, p) end
    return t, p
  end
  error(("msgpack byte 0x%02x not handled"):format(b))
end

local function pack_mp(v)
  if v == NIL then return "\xc0" end
  if v == true then return "\xc3" end
  if v == false then return "\xc2" end
  if math.type(v) == "integer" then
    if v >= 0 and v <= 0x7f then return string.char(v) end
    return "\xd3" .. string.pack(">i8", v)
  end
  if type(v) == "number" then return "\xcb" .. string.pack(">d", v) end
  if type(v) == "string" then return "\xdb" .. string.pack(">I4", #v) .. v end
  if getmetatable(v) == BIN then return "\xc6" .. string.pack(">I4", #v.s) .. v.s end
  if v[MAP] then
    local out = { "\xdf" .. string.pack(">I4", #v[MAP]) }
    for _, k in ipairs(v[MAP]) do out[#out + 1] = pack_mp(k) .. pack_mp(v[k]) end
    return table.concat(out)
  end
  local out = { "\xdd" .. string.pack(">I4", #v) }
  for i = 1, #v do out[#out + 1] = pack_mp(v[i]) end
  return table.concat(out)
end


wire.BIN, wire.bin, wire.NIL, wire.MAP = BIN, bin, NIL, MAP
wire.unpack, wire.pack = unpack_mp, pack_mp

return wire
