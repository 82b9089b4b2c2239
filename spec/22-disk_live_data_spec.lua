-- Disk follows live data (issue 17, item 1). An open store is not a
-- preallocated WAL; the WALs that rarely flushed column families pin are
-- bounded; a clean close flushes every column family, so a closed store
-- is its live data and its WAL holds nothing needed. Sizes are blocks
-- allocated on disk (du), not apparent sizes: a preallocated WAL shows
-- only in the former.
local synaptic = require "synaptic"
local helpers = require "helpers"

local MiB = 1024 * 1024

local function disk(dir)
  local f = assert(io.popen("du -s --block-size=1 " .. helpers.shq(dir)))
  local n = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return n
end

-- 256 KiB of floats that do not compress away.
local function layer(seed)
  local w = synaptic.floats(65536)
  local x = seed
  for i = 1, 65536 do
    x = (x * 1103515245 + 12345) % 2147483648
    w[i] = x / 2147483648 - 0.5
  end
  return w
end

describe("disk follows live data", function()
  teardown(function() helpers.cleanup() end)

  it("a small open store takes at most 16 MiB", function()
    local db = helpers.tmpdir("small") .. "/db"
    local s = assert(synaptic.open(db))
    assert(s:put_weights("e", 0, { 1, 2, 3 }))
    local open_bytes = disk(db)
    assert.is_true(open_bytes <= 16 * MiB, ("%.1f MiB open"):format(open_bytes / MiB))
    s:close()
  end)

  it("1,200 rewrites of a 256 KiB layer with 2 versions kept: <= 80 MiB open, <= 8 MiB closed", function()
    local db = helpers.tmpdir("rewrite") .. "/db"
    local s = assert(synaptic.open(db, { max_weight_versions = 2 }))
    local w = layer(7)
    for i = 1, 1200 do
      w[1] = i
      assert(s:put_weights("e", 0, w))
    end
    local open_bytes = disk(db)
    s:close()
    local closed_bytes = disk(db)
    assert.is_true(open_bytes <= 80 * MiB, ("%.1f MiB open"):format(open_bytes / MiB))
    assert.is_true(closed_bytes <= 8 * MiB, ("%.1f MiB closed"):format(closed_bytes / MiB))
    s = assert(synaptic.open(db, { read_only = true }))
    assert.equal(1200, s:get_weights("e", 0)[1])
    assert.equal(2, #s:weight_versions("e", 0))
    s:close()
  end)

  it("a WAL deleted after a clean close loses nothing", function()
    local db = helpers.tmpdir("walgone") .. "/db"
    local s = assert(synaptic.open(db))
    for i = 1, 100 do assert(s:put_state("k" .. i, "value " .. i)) end
    assert(s:put_weights("e", 0, { 1, 2, 3 }))
    s:close()
    local wals = 0
    for _, name in ipairs(helpers.listdir(db)) do
      if name:match("^%d+%.log$") then
        assert(os.remove(db .. "/" .. name))
        wals = wals + 1
      end
    end
    assert.is_true(wals >= 1)
    s = assert(synaptic.open(db))
    for i = 1, 100 do assert.equal("value " .. i, s:get_state("k" .. i)) end
    assert.same({ 1, 2, 3 }, s:get_weights("e", 0):totable())
    assert.is_true(s:verify())
    s:close()
  end)
end)
