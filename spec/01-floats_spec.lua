local synaptic = require "synaptic"

describe("synaptic.floats", function()
  it("makes a zeroed array of a given size", function()
    local a = synaptic.floats(5)
    assert.equal(5, #a)
    for i = 1, 5 do assert.equal(0, a[i]) end
  end)

  it("converts a table, rounding to float32", function()
    local a = synaptic.floats({ 1, 0.1, -2.5 })
    assert.equal(3, #a)
    assert.equal(1, a[1])
    assert.equal((string.unpack("<f", string.pack("<f", 0.1))), a[2])
    assert.equal(-2.5, a[3])
  end)

  it("round-trips through little-endian bytes", function()
    local a = synaptic.floats({ 1.5, -3, 1e-7 })
    local bytes = a:tobytes()
    assert.equal(12, #bytes)
    assert.equal(string.pack("<fff", 1.5, -3, 1e-7), bytes)
    local b = synaptic.floats(bytes)
    assert.same(a:totable(), b:totable())
    assert.is_true(a == b)
  end)

  it("assigns in place with bounds checks", function()
    local a = synaptic.floats(2)
    a[2] = 7
    assert.equal(7, a[2])
    assert.has_error(function() return a[0] end, "floats index 0 out of range (1..2)")
    assert.is_nil(a[3])   -- one past the end: nil, so ipairs stops there
    assert.has_error(function() return a[4] end, "floats index 4 out of range (1..2)")
    assert.has_error(function() a[3] = 1 end, "floats index 3 out of range (1..2)")
  end)

  it("refuses bad input", function()
    assert.has_error(function() synaptic.floats(-1) end)
    assert.has_error(function() synaptic.floats(2 ^ 40) end)
    assert.has_error(function() synaptic.floats("abc") end)
    assert.has_error(function() synaptic.floats({ 1, "x" }) end, "bad argument #1 to 'floats' (element 2 is a string, not a number)")
    assert.has_error(function() synaptic.floats(true) end)
  end)

  it("prints its size and first values", function()
    assert.equal("synaptic.floats(2) {1, 2}", tostring(synaptic.floats({ 1, 2 })))
  end)
end)

describe("synaptic module", function()
  it("has a version and makes distinct random UUIDs", function()
    assert.is_string(synaptic.version)
    local a, b = synaptic.uuid(), synaptic.uuid()
    assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", a)
    assert.not_equal(a, b)
  end)

  it("compresses and decompresses with every codec", function()
    local w = synaptic.floats(1000)
    for i = 1, #w do w[i] = math.sin(i) * 0.05 end
    for _, codec in ipairs(synaptic.codecs()) do
      local packed = synaptic.compress(codec, w)
      local back = synaptic.floats(synaptic.decompress(codec, packed, 4000))
      if codec == "bf16" then
        for i = 1, #w do assert.is_true(math.abs(back[i] - w[i]) <= math.abs(w[i]) / 128) end
      else
        assert.is_true(back == w, codec)
      end
    end
  end)

  it("reports corrupt compressed data instead of returning garbage", function()
    local packed = synaptic.compress("shuffle", synaptic.floats(100))
    local bad = packed:sub(1, #packed - 3)
    local r, msg = synaptic.decompress("shuffle", bad, 400)
    assert.is_nil(r)
    assert.matches("^shuffle lane %d+ claims %d+ coded bytes, %d+ are left$", msg)
  end)
end)
