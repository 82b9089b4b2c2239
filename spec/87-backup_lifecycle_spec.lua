-- A backup directory's lifecycle (RocksDB BackupEngine's DeleteBackup and
-- PurgeOldBackups): synaptic.delete_backup, synaptic.purge_old_backups and
-- `synaptic backups list | verify | purge | delete`. Making and restoring
-- backups: 41-restore_backup_spec, 59-incremental_backup_spec.
local synaptic = require "synaptic"
local cjson = require "cjson"
local helpers = require "helpers"
local C = require "cli_run"

local run, assert_fails = C.run, C.assert_fails

local function file_count(dir)
  return #helpers.command_lines("find '" .. dir .. "' -type f")
end

local function ids(dir)
  local t = {}
  for i, b in ipairs(assert(synaptic.list_backups(dir))) do t[i] = b.id end
  return t
end

-- A store backed up n times, each backup adding files of its own.
local function backed_up(n)
  local root = helpers.tmpdir("bk75")
  local s <close> = assert(synaptic.open(root .. "/db"))
  for i = 1, n do
    for layer = 1, 5 do s:put_weights("e" .. i, layer, helpers.weights(2000, i * 10 + layer), {}) end
    assert(s:compact())
    assert.equal(i, assert(s:backup(root .. "/bk")))
  end
  return root, root .. "/bk"
end

describe("backup lifecycle", function()
  teardown(function() helpers.cleanup() end)

  it("delete_backup removes one backup and the files only it used", function()
    local root, bk = backed_up(3)
    local before = file_count(bk)
    assert.is_true(synaptic.delete_backup(bk, 2))
    assert.same({ 1, 3 }, ids(bk))
    assert.is_true(file_count(bk) < before)
    assert.is_true((synaptic.verify_backup(bk)))
    -- what is left restores whole
    assert(synaptic.restore_backup(bk, root .. "/r1", 1))
    assert(synaptic.restore_backup(bk, root .. "/r3", 3))
    local r <close> = assert(synaptic.open(root .. "/r3", { read_only = true }))
    assert.same({ "e1", "e2", "e3" }, r:list_experts())
    local ok, err = synaptic.delete_backup(bk, 2)
    assert.is_nil(ok)
    assert.equal("no backup 2 in '" .. bk .. "'", err)
    ok, err = synaptic.delete_backup(root .. "/none", 1)
    assert.is_nil(ok)
    assert.matches("^no backups at '.*/none'", err)
    local _, e = pcall(synaptic.delete_backup, bk, 0)
    assert.matches("bad argument #2 to '[%w.]*delete_backup' %(backup id out of range%)", e)
  end)

  it("purge_old_backups keeps the newest n", function()
    local _, bk = backed_up(4)
    local before = file_count(bk)
    assert.equal(2, synaptic.purge_old_backups(bk, 2))
    assert.same({ 3, 4 }, ids(bk))
    assert.is_true(file_count(bk) < before)
    assert.is_true((synaptic.verify_backup(bk)))
    assert.equal(0, synaptic.purge_old_backups(bk, 5))
    assert.equal(2, synaptic.purge_old_backups(bk, 0))
    assert.same({}, ids(bk))
    local _, e = pcall(synaptic.purge_old_backups, bk, -1)
    assert.matches("bad argument #2 to '[%w.]*purge_old_backups' %(keep must be >= 0%)", e)
  end)

  it("synaptic backups list | verify | purge | delete", function()
    local _, bk = backed_up(4)
    local code, out, err = run("backups", "list", bk)
    assert.equal(0, code, err)
    local rows = C.lines(out)
    assert.equal(5, #rows)
    assert.matches("^%s+id%s+time%s+size%s+files$", rows[1])
    assert.matches("^%s+4%s+%d%d%d%d%-%d%d%-%d%dT", rows[5])
    code, out = run("backups", "list", bk, "--json")
    assert.equal(0, code)
    local list = cjson.decode(out)
    assert.equal(4, #list.backups)
    assert.equal(4, list.backups[4].id)

    code, out = run("backups", "verify", bk)
    assert.equal(0, code)
    assert.matches("^ok: 4 backups, %d+ files", out)
    code, out = run("backups", "verify", bk, "--id", "2", "--json")
    assert.equal(0, code)
    assert.same({ 2 }, cjson.decode(out).backups)

    code, out, err = run("backups", "delete", bk, "2")
    assert.equal(0, code, err)
    assert.equal("deleted backup 2; kept 3\n", out)
    assert_fails(1, "^synaptic: backups delete: no backup 2 in '.*' %(there are: 1, 3, 4%)$",
                 run("backups", "delete", bk, "2"))
    code, out = run("backups", "purge", bk, "--keep", "1", "--json")
    assert.equal(0, code)
    local r = cjson.decode(out)
    assert.equal(2, r.deleted)
    assert.same({ 4 }, r.kept)
    assert_fails(2, "%-%-keep must be an integer >= 0, got 'x'", run("backups", "purge", bk, "--keep", "x"))
    assert_fails(2, "missing option '%-%-keep'", run("backups", "purge", bk))
    assert_fails(1, "^synaptic: backups: no backups at '.*/nowhere'", run("backups", "list", bk .. "/nowhere"))
  end)

  it("synaptic backups verify names a damaged file and exits 1", function()
    local _, bk = backed_up(2)
    local victim = helpers.command_lines("ls '" .. bk .. "'/shared_checksum/*.sst | head -1")[1]
    local f = assert(io.open(victim, "r+b"))
    f:seek("set", 100)
    local byte = f:read(1)
    f:seek("set", 100)
    f:write(string.char(byte:byte() ~ 0xff))
    f:close()
    local code, out, err = run("backups", "verify", bk)
    assert.equal(1, code)
    assert.matches("backup %d: [^\n]*" .. victim:match("[^/]+$"):gsub("%p", "%%%0"), out)
    assert.matches("^synaptic: backups verify failed: %d+ problems? in 2 backups\n$", err)
  end)
end)
