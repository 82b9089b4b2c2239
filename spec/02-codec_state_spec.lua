-- A store keeps one codec state (zstd contexts, scratch memory) for every
-- record it reads and writes. Layers of very different sizes, with and
-- without biases, written and read back in mixed order through one store
-- must come back exact, bigger than the kept scratch included; verify()
-- passes over all of them; and the same through synaptic.compress /
-- decompress, which keep one state per Lua state.
local synaptic = require "synaptic"
local helpers = require "helpers"

-- float counts: tiny, lane thresholds, common sizes, and one past the
-- 4 MiB the state keeps between calls
local SIZES = { 1, 15, 16, 17, 64, 1000, 1024, 16384, 262144, 1100000 }

describe("codec state reused across records", function()
  it("layers of every size read back exact in any order, and verify passes", function()
    local s = assert(synaptic.open(helpers.tmpdir("codec-state"), { write_buffer_mb = 4 }))
    local want = {}
    for i, n in ipairs(SIZES) do
      local w = synaptic.floats(helpers.weights(n, i))
      local b = i % 2 == 0 and synaptic.floats(helpers.weights(1 + i, 100 + i)) or nil
      assert(s:put_weights("sizes", i, w, b))
      want[i] = { w = w:tobytes(), b = b and b:tobytes() or "" }
    end
    -- largest, smallest, then the rest: the scratch grows, is bypassed and
    -- shrinks back between reads
    local order = { #SIZES, 1, #SIZES - 1, 2, 5, #SIZES, 3, 9, 4, 6, 7, 8, 10 }
    for _, i in ipairs(order) do
      local w, b = s:get_weights("sizes", i)
      assert.equal(want[i].w, w:tobytes(), "layer " .. i)
      assert.equal(want[i].b, b:tobytes(), "biases of layer " .. i)
    end
    assert.is_true((s:verify()))
    -- the same after the records left the memtable for blob files
    assert(s:compact())
    for i = #SIZES, 1, -1 do
      assert.equal(want[i].w, (s:get_weights("sizes", i)):tobytes(), "layer " .. i .. " after compact")
    end
    assert.is_true((s:verify()))
    s:close()
  end)

  it("synaptic.compress and decompress: a refused stream leaves the next call exact", function()
    local big = synaptic.floats(helpers.weights(262144, 7))
    local small = synaptic.floats(helpers.weights(100, 8))
    local cb, cs = synaptic.compress("shuffle", big), synaptic.compress("shuffle", small)
    -- a damaged stream: a byte flipped inside the coded lane's frame
    local at = cb:find("\x28\xb5\x2f\xfd", 1, true)
    assert.is_truthy(at, "the big payload has a zstd-coded lane")
    local bad = cb:sub(1, at + 11) .. string.char(cb:byte(at + 12) ~ 0x10) .. cb:sub(at + 13)
    local ok, err = synaptic.decompress("shuffle", bad, #big * 4)
    assert.is_nil(ok)
    assert.matches("^shuffle lane %d+: zstd frame is malformed: ", err)
    assert.equal(small:tobytes(), synaptic.decompress("shuffle", cs, #small * 4))
    assert.equal(big:tobytes(), synaptic.decompress("shuffle", cb, #big * 4))
    for _, codec in ipairs(synaptic.codecs()) do
      if codec ~= "bf16" then
        for _, w in ipairs({ small, big, small }) do
          assert.equal(w:tobytes(), synaptic.decompress(codec, synaptic.compress(codec, w), #w * 4), codec)
        end
      end
    end
  end)
end)
