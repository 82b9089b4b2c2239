-- `synaptic export` and `synaptic import` through the real bin/synaptic:
-- safetensors files out and in, shapes, versions, and what is refused.
local synaptic = require "synaptic"
local cjson = require "cjson"
local helpers = require "helpers"
local C = require "cli_run"

local q, write_file = helpers.shq, helpers.write_file
local slurp, run, assert_fails, errfile = C.slurp, C.run, C.assert_fails, C.errfile
local store_bytes, snapshot, make_store = C.store_bytes, C.snapshot, C.make_store

describe("synaptic export and import", function()
  local root, db, cp1, cp2

  setup(function()
    root = helpers.tmpdir("cli")
    db = root .. "/db"
    cp1, cp2 = make_store(db)
  end)

  teardown(function()
    os.remove(errfile)
    helpers.cleanup()
  end)

  describe("export and import", function()
    local function read_header(path)
      local data = assert(slurp(path))
      local n = string.unpack("<I8", data)
      return cjson.decode(data:sub(9, 8 + n)), n, data
    end

    it("writes a safetensors file with every layer at its latest version", function()
      local file = helpers.tmpdir("exp") .. "/coding.safetensors"
      local code, out, err = run("export", db, "coding", file)
      assert.equal(0, code, err)
      assert.matches("^exported coding %(3 layers", out)
      local h, n, data = read_header(file)
      assert.equal(0, (8 + n) % 8)
      assert.equal("synaptic", h.__metadata__.format)
      assert.equal("coding", h.__metadata__.expert_id)
      assert.same({ ["1"] = 3, ["2"] = 1, ["3"] = 1 }, cjson.decode(h.__metadata__.versions))
      assert.same({ 8, 12 }, h["layer1.weight"].shape)
      assert.same({ 8 }, h["layer1.bias"].shape)
      assert.same({ 4, 6 }, h["layer3.weight"].shape)
      assert.equal("F32", h["layer2.weight"].dtype)
      local w, b = store_bytes(db, "coding", 1)
      local o = h["layer1.weight"].data_offsets
      assert.equal(w, data:sub(8 + n + o[1] + 1, 8 + n + o[2]))
      o = h["layer1.bias"].data_offsets
      assert.equal(b, data:sub(8 + n + o[1] + 1, 8 + n + o[2]))
    end)

    it("exports --version N and the versions a --checkpoint pins", function()
      local dir = helpers.tmpdir("expv")
      local code, out = run("export", db, "coding", dir .. "/v1.st", "--version", "1", "--json")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.equal(dir .. "/v1.st", t.file)
      assert.equal("coding", t.expert)
      assert.equal(3, #t.layers)
      assert.equal(1, t.layers[1].version)
      assert.same({ 8, 12 }, t.layers[1].shape)
      local h, n, data = read_header(dir .. "/v1.st")
      assert.equal(#data, t.bytes)
      local w = store_bytes(db, "coding", 1, 1)
      local o = h["layer1.weight"].data_offsets
      assert.equal(w, data:sub(8 + n + o[1] + 1, 8 + n + o[2]))

      code = run("export", db, "coding", dir .. "/cp.st", "--checkpoint", cp1)
      assert.equal(0, code)
      h = read_header(dir .. "/cp.st")
      assert.same({ ["1"] = 1, ["2"] = 1, ["3"] = 1 }, cjson.decode(h.__metadata__.versions))

      assert_fails(1, "layer 2 has no version 2", run("export", db, "coding", dir .. "/v2.st", "--version", "2"))
      assert.is_nil(io.open(dir .. "/v2.st"))
      assert_fails(1, "no weights", run("export", db, "nobody", dir .. "/n.st"))
      assert_fails(1, "no checkpoint", run("export", db, "coding", dir .. "/c.st", "--checkpoint", "no-such-id"))
      assert_fails(1, "cannot write", run("export", db, "coding", dir .. "/missing/dir/x.st"))
    end)

    it("round-trips export -> import bit for bit, shapes included", function()
      local dir = helpers.tmpdir("rt")
      local work = dir .. "/db"
      assert(os.execute("cp -r " .. q(db) .. " " .. q(work)))
      for _, e in ipairs { "coding", "raw" } do
        local file = dir .. "/" .. e .. ".safetensors"
        assert.equal(0, (run("export", work, e, file)))
        local code, out, err = run("import", work, e .. "-copy", file)
        assert.equal(0, code, err)
        assert.matches("^imported .* into " .. e .. "%-copy: layer %d v1", out)
      end
      local s = assert(synaptic.open(work, { read_only = true }))
      for layer = 1, 3 do
        local w1, b1, i1 = store_bytes(s, "coding", layer)
        local w2, b2, i2 = store_bytes(s, "coding-copy", layer)
        assert.equal(w1, w2)
        assert.equal(b1, b2)
        assert.same(i1.shape, i2.shape)
        assert.equal(1, i2.version)
      end
      local w1, b1, i1 = store_bytes(s, "raw", 0)
      local w2, b2, i2 = store_bytes(s, "raw-copy", 0)
      assert.equal(w1, w2)
      assert.equal("", b2)
      assert.equal(b1, b2)
      assert.is_nil(i1.shape)
      assert.is_nil(i2.shape)
      s:close()

      -- importing into the same expert adds versions
      local code, out = run("import", work, "coding", dir .. "/coding.safetensors", "--json")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.same({ layer = 1, version = 4, tensor = "layer1", dtype = "F32" }, t.layers[1])
      assert.same({ layer = 2, version = 2, tensor = "layer2", dtype = "F32" }, t.layers[2])
      assert.equal(store_bytes(work, "coding", 1, 3), (store_bytes(work, "coding", 1, 4)))
    end)

    it("imports into a new store only with --create", function()
      local dir = helpers.tmpdir("create")
      assert.equal(0, (run("export", db, "coding", dir .. "/c.st")))
      assert_fails(1, "no store at", run("import", dir .. "/new", "coding", dir .. "/c.st"))
      assert.is_nil(io.open(dir .. "/new/CURRENT"))
      local code, _, err = run("import", dir .. "/new", "coding", dir .. "/c.st", "--create")
      assert.equal(0, code, err)
      assert.equal((store_bytes(db, "coding", 2)), (store_bytes(dir .. "/new", "coding", 2)))
    end)

    it("is readable by Python (json + numpy, or the standard library)", function()
      if not os.execute("command -v python3 >/dev/null 2>&1") then return pending("no python3") end
      local dir = helpers.tmpdir("py")
      local file = dir .. "/coding.safetensors"
      assert.equal(0, (run("export", db, "coding", file)))
      -- The reference loader's rules: '{' first, offsets tile the data.
      write_file(dir .. "/read.py", [[
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
assert 0 < n <= len(data) - 8 and data[8:9] == b"{"
header = json.loads(data[8:8 + n])
body = data[8 + n:]
meta = header.pop("__metadata__", {})
assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
try:
    import numpy
except ImportError:
    numpy = None
pos, out = 0, {}
for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    b, e = t["data_offsets"]
    assert t["dtype"] == "F32" and b == pos and e <= len(body)
    count = 1
    for d in t["shape"]:
        count *= d
    assert e - b == 4 * count
    raw = body[b:e]
    if numpy is not None:
        a = numpy.frombuffer(raw, dtype="<f4").reshape(t["shape"])
        shape, raw = list(a.shape), a.astype("<f4").tobytes()
    else:
        shape = t["shape"]
        raw = struct.pack("<%df" % count, *struct.unpack("<%df" % count, raw))
    out[name] = {"shape": shape, "hex": raw.hex()}
    pos = e
assert pos == len(body)
print(json.dumps({"numpy": numpy is not None, "meta": meta, "tensors": out}))
]])
      local p = io.popen("python3 " .. q(dir .. "/read.py") .. " " .. q(file) .. " 2>&1")
      local got = p:read("a")
      assert.is_true(p:close(), got)
      local t = cjson.decode(got)
      assert.equal("coding", t.meta.expert_id)
      local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
      local s <close> = assert(synaptic.open(db, { read_only = true }))
      for layer = 1, 3 do
        local w, b, info = store_bytes(s, "coding", layer)
        assert.same(info.shape, t.tensors["layer" .. layer .. ".weight"].shape)
        assert.equal(hex(w), t.tensors["layer" .. layer .. ".weight"].hex)
        assert.equal(hex(b), t.tensors["layer" .. layer .. ".bias"].hex)
      end
    end)

    describe("a malformed file", function()
      local dir, work, good

      -- A header and body built by hand.
      local function forge(header_json, body, n)
        return string.pack("<I8", n or #header_json) .. header_json .. body
      end
      local FOUR = string.pack("<ffff", 1, 2, 3, 4)

      setup(function()
        dir = helpers.tmpdir("bad")
        work = dir .. "/db"
        assert(os.execute("cp -r " .. q(db) .. " " .. q(work)))
        assert.equal(0, (run("export", work, "coding", dir .. "/good.st")))
        good = slurp(dir .. "/good.st")
      end)

      local cases = {
        { "an empty file", function() return "" end, "too short" },
        { "a truncated file", function() return good:sub(1, #good - 5) end, "out of range" },
        { "a truncated header", function() return good:sub(1, 40) end, "header length" },
        { "a header length past the end", function()
            return string.pack("<I8", 1 << 30) .. good:sub(9) end, "header length 1073741824 does not fit" },
        { "garbage for a header length", function()
            return string.pack("<I8", 1 << 40) .. good:sub(9) end, "not a safetensors file" },
        { "a negative header length", function()
            return string.pack("<i8", -8) .. good:sub(9) end, "not a safetensors file" },
        { "a zero header length", function() return string.pack("<I8", 0) .. good:sub(9) end,
          "not a safetensors file" },
        { "bad JSON", function()
            return forge('{"layer1.weight": {"dtype": "F32", ', FOUR) end, "not valid JSON" },
        { "a JSON array header", function() return forge('[1, 2]  ', "") end, "not a JSON object" },
        { "a wrong dtype", function()
            return forge('{"layer1.weight":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}}', FOUR) end,
          "dtype I32" },
        { "an F64 beyond F32's range", function()
            return forge('{"layer1.weight":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}',
                         string.pack("<dd", 1, 1e300)) end, "element 2 %(1e%+300%) is out of F32 range" },
        { "offsets out of range", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}', FOUR) end,
          "out of range" },
        { "decreasing offsets", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}', FOUR) end,
          "data_offsets" },
        { "overlapping tensors", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},' ..
                         '"layer1.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', FOUR) end,
          "overlap" },
        { "a byte count that disagrees with the shape", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', FOUR) end,
          "do not match shape" },
        { "a huge shape", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4294967296,4294967296],' ..
                         '"data_offsets":[0,16]}}', FOUR) end, "larger than the file" },
        { "a fractional shape", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}}', FOUR) end,
          "shape%[1%]" },
        { "unused bytes", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', FOUR) end,
          "belong to no tensor" },
        { "non-string metadata", function()
            return forge('{"__metadata__":{"a":1},"layer1.weight":{"dtype":"F32","shape":[4],' ..
                         '"data_offsets":[0,16]}}', FOUR) end, "__metadata__" },
        { "an unknown tensor name", function()
            return forge('{"embedding":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', FOUR) end,
          "unexpected tensor 'embedding'" },
        { "a bias without a weight, by another name", function()
            return forge('{"fc1.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', FOUR) end,
          "fc1.bias has no fc1.weight" },
        { "a bias without a weight", function()
            return forge('{"layer1.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', FOUR) end,
          "no layer1.weight" },
        { "a scalar weight", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}',
                         string.pack("<f", 1)) end, "scalar" },
        { "a NaN in a later layer", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
                         '"layer2.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
                         string.pack("<ffff", 1, 2, 0 / 0, 4)) end, "NaN" },
      }

      for _, c in ipairs(cases) do
        it(c[1] .. " fails with one line and leaves the store unchanged", function()
          local file = dir .. "/case.st"
          write_file(file, c[2]())
          local before = snapshot(work)
          -- an expert without a config: only the file's own checks apply
          assert_fails(1, c[3], run("import", work, "loose", file))
          assert.equal(before, snapshot(work))
        end)
      end

      it("a missing file fails with one line", function()
        assert_fails(1, "absent%.st", run("import", work, "coding", dir .. "/absent.st"))
      end)
    end)
  end)

  describe("import conversions", function()
    local dir, work

    -- A safetensors file of tensors { name, dtype, shape, values }, in list
    -- order, each value packed as its dtype (F16/BF16 given as bit patterns).
    local FMT = { F32 = "f", F64 = "d", F16 = "I2", BF16 = "I2" }
    local function forge_file(path, tensors)
      local header, parts, pos = {}, {}, 0
      for i, t in ipairs(tensors) do
        local bytes = {}
        for j, v in ipairs(t[4]) do bytes[j] = string.pack("<" .. FMT[t[2]], v) end
        parts[i] = table.concat(bytes)
        header[#header + 1] = ('%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}'):format(
          cjson.encode(t[1]), t[2], cjson.encode(t[3]):gsub("{}", "[]"), pos, pos + #parts[i])
        pos = pos + #parts[i]
      end
      local text = "{" .. table.concat(header, ",") .. "}"
      write_file(path, string.pack("<I8", #text) .. text .. table.concat(parts))
      return path
    end

    local function floats(path, expert, layer)
      local w, b, info = store_bytes(path, expert, layer)
      local function list(bytes)
        local t = {}
        for i = 1, #bytes // 4 do t[i] = string.unpack("<f", bytes, 4 * i - 3) end
        return t
      end
      return list(w), list(b), info
    end

    setup(function()
      dir = helpers.tmpdir("conv")
      work = dir .. "/db"
      assert(os.execute("cp -r " .. q(db) .. " " .. q(work)))
    end)

    it("converts F16, BF16 and F64 to F32, keeping shapes", function()
      local file = forge_file(dir .. "/mixed.st", {
        { "layer1.weight", "F16", { 2, 2 }, { 0x3c00, 0xc000, 0x3800, 0x0001 } },   -- 1, -2, 0.5, 2^-24
        { "layer1.bias", "BF16", { 2 }, { 0x3f80, 0x4040 } },                       -- 1, 3
        { "layer2.weight", "F64", { 1, 2 }, { 1 / 3, 1e-3 } },
        { "layer2.bias", "F32", { 1 }, { 0.25 } },
      })
      local code, out, err = run("import", work, "conv", file, "--json")
      assert.equal(0, code, err)
      local t = cjson.decode(out)
      assert.equal("F16", t.layers[1].dtype)
      assert.equal("F64", t.layers[2].dtype)
      local w, b, info = floats(work, "conv", 1)
      assert.same({ 1, -2, 0.5, 2 ^ -24 }, w)
      assert.same({ 1, 3 }, b)
      assert.same({ 2, 2 }, info.shape)
      w, b, info = floats(work, "conv", 2)
      assert.same({ (string.unpack("<f", string.pack("<f", 1 / 3))), (string.unpack("<f", string.pack("<f", 1e-3))) }, w)
      assert.same({ 0.25 }, b)
      assert.same({ 1, 2 }, info.shape)
    end)

    it("takes other names in natural order, from layer 1", function()
      local file = forge_file(dir .. "/named.st", {
        { "fc10.weight", "F32", { 1 }, { 10 } },
        { "fc2.bias", "F32", { 1 }, { -2 } },
        { "fc2.weight", "F32", { 1, 1 }, { 2 } },
        { "fc1.weight", "F32", { 1 }, { 1 } },
      })
      local code, out, err = run("import", work, "named", file)
      assert.equal(0, code, err)
      assert.matches("layer 1 v1 from fc1, layer 2 v1 from fc2, layer 3 v1 from fc10", out)
      assert.same({ 1 }, (floats(work, "named", 1)))
      local w, b = floats(work, "named", 2)
      assert.same({ 2 }, w)
      assert.same({ -2 }, b)
      assert.same({ 10 }, (floats(work, "named", 3)))
    end)

    it("maps names to layers with --map, a bare tensor name included", function()
      local file = forge_file(dir .. "/mapped.st", {
        { "fc1.weight", "F32", { 2 }, { 1, 1 } },
        { "fc1.bias", "F32", { 1 }, { 0 } },
        { "out", "F16", { 1 }, { 0x4000 } },
      })
      local code, out, err = run("import", work, "mapped", file, "--map", "fc1=5, out=0", "--json")
      assert.equal(0, code, err)
      local t = cjson.decode(out)
      assert.same({ 0, 5 }, { t.layers[1].layer, t.layers[2].layer })
      assert.same({ 2 }, (floats(work, "mapped", 0)))
      assert.same({ 1, 1 }, (floats(work, "mapped", 5)))
    end)

    it("refuses a --map that does not fit the file, changing nothing", function()
      local file = forge_file(dir .. "/two.st", {
        { "fc1.weight", "F32", { 1 }, { 1 } },
        { "fc2.weight", "F32", { 1 }, { 2 } },
      })
      local before = snapshot(work)
      assert_fails(1, "tensor group 'fc2' is not in %-%-map", run("import", work, "m", file, "--map", "fc1=1"))
      assert_fails(1, "%-%-map names 'fc3', which the file does not have",
                   run("import", work, "m", file, "--map", "fc1=1,fc2=2,fc3=3"))
      assert_fails(2, "%-%-map gives layer 1 twice", run("import", work, "m", file, "--map", "fc1=1,fc2=1"))
      assert_fails(2, "%-%-map names 'fc1' twice", run("import", work, "m", file, "--map", "fc1=1,fc1=2"))
      assert_fails(2, "%-%-map entries are name=layer, got 'fc1'", run("import", work, "m", file, "--map", "fc1"))
      assert_fails(2, "got 'fc1=%-1'", run("import", work, "m", file, "--map", "fc1=-1"))
      assert.equal(before, snapshot(work))
    end)

    it("refuses shapes that do not match the expert's configured architecture, writing nothing", function()
      -- "coding" is configured { 12, 8, 6, 4 }: layer 1 maps 12 inputs to 8 outputs
      local before = snapshot(work)
      local function zeros(n) local t = {} for i = 1, n do t[i] = 0 end return t end
      local file = forge_file(dir .. "/wrongarch.st", {
        { "layer1.weight", "F32", { 3, 4 }, zeros(12) },
        { "layer1.bias", "F32", { 3 }, zeros(3) },
      })
      assert_fails(1, "layer 1 %(layer1%): shape %[3, 4%] does not match coding's architecture, which needs %[8, 12%]",
                   run("import", work, "coding", file))
      file = forge_file(dir .. "/wrongbias.st", {
        { "layer2.weight", "F32", { 6, 8 }, zeros(48) },
        { "layer2.bias", "F32", { 5 }, zeros(5) },
      })
      assert_fails(1, "5 biases where coding's architecture needs 6", run("import", work, "coding", file))
      file = forge_file(dir .. "/extralayer.st", { { "layer4.weight", "F32", { 2, 2 }, zeros(4) } })
      assert_fails(1, "layer 4: coding's architecture has layers 1 to 3", run("import", work, "coding", file))
      assert.equal(before, snapshot(work))
      -- the right shapes go in
      file = forge_file(dir .. "/rightarch.st", {
        { "layer3.weight", "F32", { 4, 6 }, zeros(24) },
        { "layer3.bias", "F32", { 4 }, zeros(4) },
      })
      local code, _, err = run("import", work, "coding", file)
      assert.equal(0, code, err)
    end)

    it("still checks shapes after conversion", function()
      local before = snapshot(work)
      local file = forge_file(dir .. "/badbias.st", {
        { "fc1.weight", "F16", { 2 }, { 0x3c00, 0x3c00 } },
        { "fc1.bias", "F16", { 1, 1 }, { 0x3c00 } },
      })
      assert_fails(1, "fc1.bias has rank 2; expected a vector", run("import", work, "s", file))
      file = forge_file(dir .. "/scalar.st", { { "w.weight", "F64", {}, { 1 } } })
      assert_fails(1, "w.weight is a scalar", run("import", work, "s", file))
      assert.equal(before, snapshot(work))
    end)
  end)
end)
