-- An incremental backup costs what changed: the files the store already
-- backed up are neither copied nor read again (each table and blob file's
-- CRC32C is in the MANIFEST, which names it in the backup), and what it
-- does copy is checked: RocksDB checks each copied file against the
-- MANIFEST's CRC32C, and the backup reads back the files it added.
local synaptic = require "synaptic"
local helpers = require "helpers"

local function floats(n, seed)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = x / 2147483648 - 0.5
  end
  return synaptic.floats(t)
end

-- Bytes this process has read through read(2) and friends, page cache
-- included (Linux /proc/self/io), or nil where there is no such file.
local function bytes_read()
  local f = io.open("/proc/self/io")
  if not f then return nil end
  local t = f:read("a")
  f:close()
  return tonumber(t:match("rchar: (%d+)"))
end

local function blob_files(dir)
  local list = {}
  for _, name in ipairs(helpers.listdir(dir)) do
    if name:match("%.blob$") then list[#list + 1] = name end
  end
  return list
end

local function flip_byte(path, at)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", at)
  local c = f:read(1)
  f:seek("set", at)
  f:write(string.char(c:byte() ~ 0xff))
  f:close()
end

describe("incremental backups", function()
  after_each(helpers.cleanup)

  it("read neither the files backed up before nor more than they add, and restore whole", function()
    local root = helpers.tmpdir("incr")
    local s = assert(synaptic.open(root .. "/db"))
    local big = floats(262144, 3)                -- 1 MiB a layer, 8 MiB in all
    for l = 1, 8 do s:put_weights("e", l, big) end
    assert(s:compact())
    assert.equal(1, s:backup(root .. "/bk"))
    s:put_weights("e", 100, floats(4096, 5))    -- 16 KiB more
    local before = bytes_read()
    assert.equal(2, s:backup(root .. "/bk"))
    local read = before and bytes_read() - before
    if read then
      -- the 8 MiB blob file is not read again (it was, to name it, before
      -- the MANIFEST held file checksums)
      assert.is_true(read < 2 * 1024 * 1024, "the backup read " .. read .. " bytes")
    end
    local list = assert(synaptic.list_backups(root .. "/bk"))
    assert.equal(2, #list)
    assert.is_true(list[2].size > list[1].size)
    s:close()
    assert.is_true((synaptic.verify_backup(root .. "/bk")))
    assert(synaptic.restore_backup(root .. "/bk", root .. "/copy"))
    local c = assert(synaptic.open(root .. "/copy"))
    assert.same(big:totable(), c:get_weights("e", 8):totable())
    assert.same(floats(4096, 5):totable(), c:get_weights("e", 100):totable())
    assert.is_true((c:verify()))
    c:close()
  end)

  it("fails, naming the damage, when a store file no longer matches its checksum", function()
    local root = helpers.tmpdir("incr_damage")
    local s = assert(synaptic.open(root .. "/db"))
    for l = 1, 2 do s:put_weights("e", l, floats(65536, l)) end
    assert(s:compact())
    local blobs = blob_files(root .. "/db")
    assert.is_true(#blobs > 0)
    flip_byte(root .. "/db/" .. blobs[1], 4000)
    local id, msg = s:backup(root .. "/bk")
    assert.is_nil(id)
    assert.matches("[Cc]hecksum", msg)
    s:close()
  end)

  it("back up a store whose files predate file checksums (the format-1 fixture)", function()
    local dir = helpers.tmpdir("incr_old")
    assert(os.execute(("tar xzf %s -C %s"):format(
      helpers.shq(helpers.ROOT .. "/spec/fixtures/format1-stores.tar.gz"), helpers.shq(dir))))
    local s = assert(synaptic.open(dir .. "/a"))
    local want = s:get_weights("x", 0):totable()
    assert.equal(1, s:backup(dir .. "/bk"))
    s:put_weights("x", 1, { 1, 2, 3 })
    assert.equal(2, s:backup(dir .. "/bk"))
    s:close()
    assert.is_true((synaptic.verify_backup(dir .. "/bk")))
    assert(synaptic.restore_backup(dir .. "/bk", dir .. "/copy"))
    local c = assert(synaptic.open(dir .. "/copy"))
    assert.same(want, c:get_weights("x", 0):totable())
    assert.same({ 1, 2, 3 }, c:get_weights("x", 1):totable())
    c:close()
  end)
end)
