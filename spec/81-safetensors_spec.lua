-- synaptic.safetensors on its own: round trips, the file functions, the
-- nil-and-reason contract on bad input, and loading without the C core.
-- Tensor data here is plain F32 bytes, so nothing needs synaptic.floats.
local safetensors = require "synaptic.safetensors"
local cjson = require "cjson"
local helpers = require "helpers"

local f32_bytes = helpers.f32_bytes

-- A file from a header table (encoded by cjson) and raw data bytes.
local function file_with_header(header, data)
  local text = type(header) == "string" and header or cjson.encode(header)
  return string.pack("<I8", #text) .. text .. (data or "")
end

-- decode must answer nil and a one-line string, never raise.
local function assert_rejects(data, pattern)
  local ok, t, err = pcall(safetensors.decode, data)
  assert.is_true(ok, tostring(t))
  assert.is_nil(t)
  assert.is_string(err)
  assert.not_matches("\n", err)
  if pattern then assert.matches(pattern, err) end
  return err
end

local TENSORS = {
  { name = "embed", shape = { 3, 2, 2 }, data = f32_bytes { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 } },
  { name = "layer1.weight", shape = { 2, 3 }, data = f32_bytes { 0.5, -1, 2, 1e-20, -0, 3e30 } },
  { name = "layer1.bias", shape = { 2 }, data = f32_bytes { 0.25, -0.125 } },
  { name = "scale", shape = {}, data = f32_bytes { 42 } },
  { name = "nothing", shape = { 0, 4 }, data = "" },
}

describe("synaptic.safetensors", function()
  teardown(helpers.cleanup)

  it("round-trips several tensors with their shapes, in order, and metadata", function()
    local data = safetensors.encode(TENSORS, { format = "test", count = 5, ["ключ"] = "значение" })
    local n = string.unpack("<I8", data)
    assert.equal(0, n % 8)
    local file = assert(safetensors.decode(data))
    assert.same({ "embed", "layer1.weight", "layer1.bias", "scale", "nothing" }, file.order)
    local offset = 0
    for _, t in ipairs(TENSORS) do
      local got = file.tensors[t.name]
      assert.equal(t.name, got.name)
      assert.equal("F32", got.dtype)
      assert.same(t.shape, got.shape)
      assert.equal(t.data, got.bytes)
      assert.same({ offset, offset + #t.data }, got.data_offsets)
      offset = offset + #t.data
    end
    assert.same({ format = "test", count = "5", ["ключ"] = "значение" }, file.metadata)
    assert.equal(8 + n + offset, #data)
  end)

  it("writes the header deterministically, metadata keys sorted", function()
    local a = safetensors.encode(TENSORS, { b = "2", a = "1", c = "3" })
    local b = safetensors.encode(TENSORS, { c = "3", a = "1", b = "2" })
    assert.equal(a, b)
    local header = a:sub(9, 8 + string.unpack("<I8", a))
    assert.matches('^{"__metadata__":{"a":"1","b":"2","c":"3"},"embed":{"dtype":"F32"', header)
    assert.matches('"scale":{"dtype":"F32","shape":%[%],', header)
  end)

  it("raises on a shape that does not match the data (a caller's bug)", function()
    assert.has_error(function()
      safetensors.encode { { name = "bad", shape = { 3 }, data = f32_bytes { 1, 2 } } }
    end, "tensor bad: shape does not match its data")
  end)

  it("writes and reads files, naming the file in its messages", function()
    local dir = helpers.tmpdir("safetensors")
    local path = dir .. "/model.safetensors"
    local size = assert(safetensors.write(path, TENSORS, { format = "test" }))
    assert.equal(#helpers.read_file(path), size)
    assert.same({ "model.safetensors" }, helpers.listdir(dir))
    local file = assert(safetensors.read(path))
    assert.equal(TENSORS[2].data, file.tensors["layer1.weight"].bytes)
    assert.same({ format = "test" }, file.metadata)

    local t, err = safetensors.read(dir .. "/missing")
    assert.is_nil(t)
    assert.equal("cannot read '" .. dir .. "/missing': No such file or directory", err)
    helpers.write_file(dir .. "/junk", "junk")
    t, err = safetensors.read(dir .. "/junk")
    assert.is_nil(t)
    assert.equal(dir .. "/junk: file too short for a safetensors header (4 bytes)", err)
    t, err = safetensors.write(dir .. "/no/such/dir/x", TENSORS)
    assert.is_nil(t)
    assert.matches("^cannot write '" .. dir:gsub("%p", "%%%0") .. "/no/such/dir/x': ", err)
    assert.same({ "junk", "model.safetensors" }, helpers.listdir(dir))
  end)

  it("rejects every truncation of a valid file", function()
    local data = safetensors.encode(TENSORS, { format = "test" })
    for cut = 0, #data - 1 do assert_rejects(data:sub(1, cut)) end
  end)

  it("rejects garbage and headers of the wrong size", function()
    assert_rejects("", "^file too short")
    assert_rejects(string.rep("\255", 64),
                   "^not a safetensors file: its first 8 bytes are not a header length %(ff ff ff ff ff ff ff ff%)$")
    assert_rejects(string.pack("<I8", 0) .. "{}", "^not a safetensors file: its first 8 bytes are not a header length")
    assert_rejects(string.pack("<i8", -8126291960651071686) .. "{}",
                   "^not a safetensors file: its first 8 bytes are not a header length %(3a bf 47 48 84 9c 39 8f%)$")
    assert_rejects(string.pack("<I8", 1000) .. "{}", "^header length 1000 does not fit a 10%-byte file")
    assert_rejects(file_with_header("[1,2]"), "^header is not a JSON object")
    assert_rejects(file_with_header("{not json"), "^header is not valid JSON: ")
    assert_rejects(file_with_header('{"a":{"dtype":"F32"'), "^header is not valid JSON: ")
    assert_rejects(42, "must be a string")
    for seed = 1, 50 do
      local s, bytes = seed, {}
      for i = 1, 200 do
        s = (s * 1103515245 + 12345) % 2147483648
        bytes[i] = string.char(s % 256)
      end
      local data = table.concat(bytes)
      assert_rejects(data)
      assert_rejects(string.pack("<I8", 150) .. data:sub(9))
    end
  end)

  it("rejects a header over MAX_HEADER without reading it", function()
    local n = safetensors.MAX_HEADER + 8
    -- a short string claiming a huge header, and one that really has it
    assert_rejects(string.pack("<I8", n) .. "{}", "does not fit")
    local big = string.pack("<I8", n) .. "{" .. string.rep(" ", n - 1)
    assert_rejects(big, ("^header length %d is over the %d%%-byte limit"):format(n, safetensors.MAX_HEADER))
  end)

  it("rejects headers that describe impossible tensors", function()
    local eight = f32_bytes { 1, 2 }
    local function tensor(t) return file_with_header({ x = t }, eight) end
    assert_rejects(file_with_header({ __metadata__ = { a = 1 } }), "must map strings to strings")
    assert_rejects(file_with_header({ __metadata__ = "x" }), "__metadata__ is not an object")
    assert_rejects(tensor "x", "tensor 'x' is not an object")
    assert_rejects(tensor { dtype = "I32", shape = { 2 }, data_offsets = { 0, 8 } },
                   "dtype I32; only F32, F16, BF16 and F64")
    assert_rejects(tensor { dtype = "F16", shape = { 2 }, data_offsets = { 0, 8 } },
                   "8 data bytes do not match shape 2 %(4 bytes of F16%)")
    assert_rejects(tensor { dtype = "F64", shape = { 2 }, data_offsets = { 0, 8 } },
                   "shape %[2%] is larger than the file")
    assert_rejects(tensor { dtype = "F64", shape = { 1 }, data_offsets = { 0, 4 } },
                   "4 data bytes do not match shape 1 %(8 bytes of F64%)")
    assert_rejects(tensor { dtype = "F32", shape = { 2 }, data_offsets = { 0, 8 }, extra = 1 },
                   "unknown field 'extra'")
    assert_rejects(tensor { dtype = "F32", data_offsets = { 0, 8 } }, "has no shape list")
    assert_rejects(tensor { dtype = "F32", shape = { -2 }, data_offsets = { 0, 8 } }, "shape%[1%]")
    assert_rejects(tensor { dtype = "F32", shape = { 2 ^ 40, 2 ^ 40 }, data_offsets = { 0, 8 } },
                   "larger than the file")
    assert_rejects(tensor { dtype = "F32", shape = { 2 }, data_offsets = { 8, 0 } }, "increasing pair")
    assert_rejects(tensor { dtype = "F32", shape = { 2 }, data_offsets = { 0, 16 } }, "out of range")
    assert_rejects(tensor { dtype = "F32", shape = { 1 }, data_offsets = { 0, 8 } }, "do not match shape 1")
    assert_rejects(tensor { dtype = "F32", shape = { 1 }, data_offsets = { 4, 8 } },
                   "4 bytes at data offset 0 belong to no tensor")
    assert_rejects(file_with_header({ x = { dtype = "F32", shape = { 2 }, data_offsets = { 0, 8 } },
                                      y = { dtype = "F32", shape = { 1 }, data_offsets = { 4, 8 } } },
                                    eight), "overlap")
    assert_rejects(file_with_header({ x = { dtype = "F32", shape = { 1 }, data_offsets = { 0, 4 } } },
                                    eight), "4 bytes after the last tensor")
  end)

  describe("other dtypes", function()
    -- A one-tensor file of dtype with elements packed by fmt.
    local function decoded(dtype, fmt, values)
      local bytes = {}
      for i, v in ipairs(values) do bytes[i] = string.pack("<" .. fmt, v) end
      local data = table.concat(bytes)
      local file = assert(safetensors.decode(file_with_header(
        { x = { dtype = dtype, shape = { #values }, data_offsets = { 0, #data } } }, data)))
      return file.tensors.x
    end

    local function floats_of(bytes)
      local t = {}
      for i = 1, #bytes // 4 do t[i] = string.unpack("<f", bytes, 4 * i - 3) end
      return t
    end

    it("decode keeps the dtype and the raw bytes", function()
      local t = decoded("F16", "I2", { 0x3c00, 0xc000 })
      assert.equal("F16", t.dtype)
      assert.equal(string.pack("<I2I2", 0x3c00, 0xc000), t.bytes)
      assert.equal("F64", decoded("F64", "d", { 1 }).dtype)
      assert.equal("BF16", decoded("BF16", "I2", { 1 }).dtype)
    end)

    it("to_f32 converts F16 exactly: normals, subnormals, zeros, infinities, NaN", function()
      local t = decoded("F16", "I2", { 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0200, 0x3555,
                                       0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00 })
      local f = floats_of(assert(safetensors.to_f32(t)))
      assert.same({ 1, -2, 65504, 2 ^ -24, 1023 * 2 ^ -24, 2 ^ -15, 1365 / 4096 },
                  { table.unpack(f, 1, 7) })
      assert.equal(0, f[8])
      assert.equal("-0.0", tostring(f[9]))
      assert.equal(math.huge, f[10])
      assert.equal(-math.huge, f[11])
      assert.is_true(f[12] ~= f[12])
    end)

    it("to_f32 converts BF16 exactly", function()
      local f = floats_of(assert(safetensors.to_f32(decoded("BF16", "I2", { 0x3f80, 0xc000, 0x3eaa, 0x7f80, 0x0001 }))))
      assert.same({ 1, -2, (string.unpack("<f", string.pack("<I4", 0x3eaa0000))), math.huge,
                    (string.unpack("<f", string.pack("<I4", 0x00010000))) }, f)
    end)

    it("to_f32 rounds F64 to the nearest F32 and refuses values beyond its range", function()
      local values = { 1 / 3, -1e-30, 1e38, 0.1, 123456789 }
      local f = floats_of(assert(safetensors.to_f32(decoded("F64", "d", values))))
      for i, v in ipairs(values) do
        assert.equal(string.unpack("<f", string.pack("<f", v)), f[i])
      end
      local t, err = safetensors.to_f32(decoded("F64", "d", { 1, 2, 1e39 }))
      assert.is_nil(t)
      assert.equal("tensor 'x': element 3 (1e+39) is out of F32 range", err)
    end)

    it("to_f32 of F32 is its bytes, and of many elements is fast enough to be whole", function()
      local t = decoded("F32", "f", { 1.5, 2 })
      assert.equal(t.bytes, safetensors.to_f32(t))
      local values = {}
      for i = 1, 1000 do values[i] = i - 500 end
      local f = floats_of(safetensors.to_f32(decoded("F64", "d", values)))
      assert.same(values, f)
    end)

    it("to_f32 raises on something that is not a decoded tensor", function()
      assert.has_error(function() safetensors.to_f32({ dtype = "I8", bytes = "" }) end,
        "bad argument #1 to 'to_f32' (a tensor from decode expected)")
      assert.has_error(function() safetensors.to_f32(nil) end)
    end)
  end)

  it("loads and works without the synaptic C core", function()
    local script = [[
      package.preload["synaptic.core"] = function() error("the C core was loaded") end
      local st = require "synaptic.safetensors"
      local data = st.encode({ { name = "w", shape = { 1 }, data = string.pack("<f", 1) } }, { k = "v" })
      assert(st.decode(data).metadata.k == "v")
      assert(package.loaded["synaptic.core"] == nil and package.loaded.synaptic == nil)
      io.write("ok")
    ]]
    local root = helpers.ROOT
    local ok, _, out = helpers.run(("LUA_PATH=%s LUA_CPATH=';;' lua5.4 -e %s"):format(
      helpers.shq(root .. "/lua/?.lua;;"), helpers.shq(script)))
    assert.is_true(ok, out)
    assert.equal("ok", out)
  end)
end)
