-- restore_backup never replaces a store that is open or a path that holds
-- something without force, restores exactly the backup asked for or fails
-- naming it, and verify_backup checks a backup without restoring it.
-- Messages name the file, backup or store at fault.
local synaptic = require "synaptic"
local helpers = require "helpers"

local OPTS = { write_buffer_mb = 1, cache_mb = 1 }

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local t = f:read("a")
  f:close()
  return t
end

local function flip_byte(path, at)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", at)
  local c = f:read(1)
  f:seek("set", at)
  f:write(string.char(c:byte() ~ 0xff))
  f:close()
end

-- The files backup id's meta file lists, relative to the backup directory.
local function listed_files(bk, id)
  local files = {}
  for name in read_file(bk .. "/meta/" .. id):gmatch("(%S+) crc32 %d+") do files[#files + 1] = name end
  return files
end

-- A lua process that opens the store at path and holds it until killed.
-- Returns a function that stops it.
local function hold_in_other_process(path)
  local ready = path .. ".ready"
  local script = ("local s = assert(require('synaptic').open(%q)); io.open(%q, 'w'):close(); io.read('a')")
    :format(path, ready)
  local p = assert(io.popen(("LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q"):format(
    package.path, package.cpath, script), "w"))
  for _ = 1, 200 do
    if io.open(ready) then break end
    os.execute("sleep 0.05")
  end
  assert(io.open(ready), "the other process did not open the store")
  return function() p:close() end
end

describe("restore_backup and verify_backup", function()
  local root, bk, store
  before_each(function()
    root = helpers.tmpdir("rb")
    bk = root .. "/bk"
    store = assert(synaptic.open(root .. "/db", OPTS))
    store:put_state("n", 1)
    assert.equal(1, store:backup(bk))
    store:put_state("n", 2)
    store:put_weights("e", 0, helpers.weights(500, 1))
    assert.equal(2, store:backup(bk))
  end)
  after_each(function()
    store:close()
    helpers.cleanup()
  end)

  local function state_in(path)
    local r = assert(synaptic.open(path, OPTS))
    local n = r:get_state("n")
    r:close()
    return n
  end

  it("refuses a path that holds anything unless force", function()
    local target = root .. "/t"
    os.execute("mkdir -p '" .. target .. "'")
    write_file(target .. "/notes.txt", "mine")
    local ok, err = synaptic.restore_backup(bk, target)
    assert.is_nil(ok)
    assert.matches("cannot restore into '.*/t': it is not empty", err)
    assert.equal("mine", read_file(target .. "/notes.txt"))
    -- an empty directory and an absent path are fine
    os.execute("mkdir -p '" .. root .. "/empty'")
    assert.is_true(synaptic.restore_backup(bk, root .. "/empty"))
    assert.is_true(synaptic.restore_backup(bk, root .. "/absent", 1))
    assert.equal(1, state_in(root .. "/absent"))
    -- force replaces it: a restored store, newest backup
    assert.is_true(synaptic.restore_backup(bk, target, { force = true }))
    assert.equal(2, state_in(target))
    -- a restored store holds something: restoring over it needs force again
    ok, err = synaptic.restore_backup(bk, target, 1)
    assert.is_nil(ok)
    assert.matches("not empty", err)
    assert.is_true(synaptic.restore_backup(bk, target, 1, { force = true }))
    assert.equal(1, state_in(target))
  end)

  it("refuses a file, even with force", function()
    write_file(root .. "/file", "x")
    local ok, err = synaptic.restore_backup(bk, root .. "/file", { force = true })
    assert.is_nil(ok)
    assert.matches("'.*/file': it exists and is not a directory", err)
  end)

  it("refuses a store open in this process, even with force; the store goes on", function()
    local ok, err = synaptic.restore_backup(bk, root .. "/db", 1, { force = true })
    assert.is_nil(ok)
    assert.matches("store at '.*/db' is open in this process", err)
    assert.equal(2, store:get_state("n"))
    assert.is_true(store:put_state("n", 3))
    store:close()
    assert.equal(3, state_in(root .. "/db"))
    -- once closed it may be replaced
    assert.is_true(synaptic.restore_backup(bk, root .. "/db", 1, { force = true }))
    assert.equal(1, state_in(root .. "/db"))
    store = assert(synaptic.open(root .. "/db", OPTS))
  end)

  it("refuses a store held by another process, even with force", function()
    store:close()
    local stop = hold_in_other_process(root .. "/db")
    local ok, err = synaptic.restore_backup(bk, root .. "/db", 1, { force = true })
    local s2, err2 = synaptic.open(root .. "/db", OPTS)
    stop()
    assert.is_nil(ok)
    assert.matches("store at '.*/db' is in use by another process %(pid %d+%)", err)
    assert.is_nil(s2)
    assert.matches("cannot open store at '.*/db': store is already open %(by this or another process%)", err2)
    store = assert(synaptic.open(root .. "/db", OPTS))
    assert.equal(2, store:get_state("n"))
  end)

  it("a second open in this process says the store is already open", function()
    local s2, err = synaptic.open(root .. "/db", OPTS)
    assert.is_nil(s2)
    assert.equal("cannot open store at '" .. root .. "/db': store is already open (by this or another process)", err)
    assert.not_matches("lock hold", err)
  end)

  it("a damaged newest backup fails naming it, never restoring an older one", function()
    local target = root .. "/t"
    os.execute("mkdir -p '" .. target .. "'")
    write_file(target .. "/keep.txt", "kept")
    write_file(bk .. "/meta/2", "12")   -- a torn meta file: RocksDB drops backup 2
    assert.equal(1, #synaptic.list_backups(bk))
    local ok, err = synaptic.restore_backup(bk, target, { force = true })
    assert.is_nil(ok)
    assert.matches("backup 2 in '.*/bk' is damaged: .*/bk/meta/2: ", err)
    -- nothing at the target was touched
    assert.equal("kept", read_file(target .. "/keep.txt"))
    ok, err = synaptic.restore_backup(bk, target, 2, { force = true })
    assert.is_nil(ok)
    assert.matches("backup 2 .* is damaged", err)
    -- the older one, asked for by id, still restores
    assert.is_true(synaptic.restore_backup(bk, target, 1, { force = true }))
    assert.equal(1, state_in(target))
  end)

  it("a damaged file fails the restore naming the file; verify_backup lists it", function()
    local ok, report = synaptic.verify_backup(bk)
    assert.is_true(ok)
    assert.same({ 1, 2 }, report.backups)
    assert.is_true(report.files > 0 and report.bytes > 0)
    assert.same({}, report.problems)

    -- a file only backup 2 has: its MANIFEST
    local victim
    for _, f in ipairs(listed_files(bk, 2)) do
      if f:match("^private/2/MANIFEST") then victim = f end
    end
    assert.is_string(victim)
    flip_byte(bk .. "/" .. victim, 10)
    ok, report = synaptic.verify_backup(bk)
    assert.is_false(ok)
    assert.equal(1, #report.problems)
    assert.equal(2, report.problems[1].backup)
    assert.equal(bk .. "/" .. victim, report.problems[1].where)
    assert.matches("checksum mismatch", report.problems[1].error)
    assert.is_true((synaptic.verify_backup(bk, 1)))
    assert.is_false((synaptic.verify_backup(bk, 2)))

    local err
    ok, err = synaptic.restore_backup(bk, root .. "/t")
    assert.is_nil(ok)
    assert.matches("backup 2 in '.*/bk' is damaged: .*/bk/private/2/MANIFEST%-%d+: checksum mismatch", err)
    assert.is_nil(io.open(root .. "/t/CURRENT"))
    assert.is_true(synaptic.restore_backup(bk, root .. "/t", 1))

    -- a missing file is named too
    os.remove(bk .. "/" .. victim)
    ok, report = synaptic.verify_backup(bk, 2)
    assert.is_false(ok)
    assert.matches("MANIFEST", report.problems[1].where .. report.problems[1].error)
  end)

  it("verify_backup and restore_backup report missing backups as nil, message", function()
    local ok, err = synaptic.verify_backup(root .. "/none")
    assert.is_nil(ok)
    assert.matches("no backups at '.*/none'", err)
    ok, err = synaptic.verify_backup(bk, 9)
    assert.is_nil(ok)
    assert.equal("no backup 9 in '" .. bk .. "'", err)
    ok, err = synaptic.restore_backup(bk, root .. "/t", 9)
    assert.is_nil(ok)
    assert.equal("no backup 9 in '" .. bk .. "'", err)
    os.execute("mkdir -p '" .. root .. "/emptybk'")
    ok, err = synaptic.restore_backup(root .. "/emptybk", root .. "/t")
    assert.is_nil(ok)
    assert.matches("no backups in", err)
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() synaptic.restore_backup(bk, root .. "/t", { forse = true }) end)
    assert.has_error(function() synaptic.restore_backup(bk, root .. "/t", 1, { force = "yes" }) end)
    assert.has_error(function() synaptic.restore_backup(bk, root .. "/t", 1, 5) end)
    assert.has_error(function() synaptic.restore_backup(bk, "") end)
    assert.has_error(function() synaptic.verify_backup(bk, -1) end)
    assert.has_error(function() synaptic.verify_backup(nil) end)
  end)

  describe("the CLI's restore", function()
    local C = require "cli_run"

    it("refuses a store open in another process, even with --force", function()
      store:close()
      local stop = hold_in_other_process(root .. "/db")
      local code, out, err = C.run("restore", root .. "/db", bk, "--id", "1", "--force")
      stop()
      C.assert_fails(1, "in use by another process", code, out, err)
      store = assert(synaptic.open(root .. "/db", OPTS))
      assert.equal(2, store:get_state("n"))
    end)

    it("fails naming a damaged newest backup instead of restoring an older one", function()
      write_file(bk .. "/meta/2", "12")
      C.assert_fails(1, "backup 2 in .* is damaged", C.run("restore", root .. "/t", bk))
      assert.is_nil(io.open(root .. "/t/CURRENT"))
      local code, out, err = C.run("restore", root .. "/t", bk, "--id", "1")
      assert.equal(0, code, err)
      assert.matches("^restored backup 1 ", out)
    end)
  end)
end)
