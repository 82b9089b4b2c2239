-- RocksDB's info LOG lives on /dev/shm while a store is open (a full disk
-- must not abort the process: sn_infolog.c), and RAM is not a place to keep
-- one per store ever opened: a close takes it away, the last LOG of a
-- writable store lands in the store directory, a read-only handle beside a
-- writer never takes the writer's LOG, and what a killed reader left is
-- swept by the next open.
local synaptic = require "synaptic"
local helpers = require "helpers"

local function shm_base()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return "/dev/shm/synaptic-" .. uid
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- The directories under base holding a LOG named after tag (RocksDB names
-- it by the flattened store path).
local function log_dirs(tag)
  local found, seen = {}, {}
  local p = io.popen("find " .. shm_base() .. " -mindepth 2 -maxdepth 2 -name '*" .. tag .. "*' 2>/dev/null")
  for f in p:lines() do
    local dir = f:match("^(.*)/[^/]*$")
    if not seen[dir] then seen[dir] = true found[#found + 1] = dir end
  end
  p:close()
  table.sort(found)
  return found
end

describe("the info LOG", function()
  after_each(helpers.cleanup)

  local function fresh()
    local dir = helpers.tmpdir("infolog")
    os.execute("rm -rf '" .. dir .. "'")
    return dir, dir:match("[^/]+$")
  end

  it("is on /dev/shm while open, in the store after a close, and gone from /dev/shm", function()
    if not exists("/dev/shm") then pending("no /dev/shm here") return end
    local dir, tag = fresh()
    local s = assert(synaptic.open(dir))
    assert(s:put_weights("e", 0, synaptic.floats({ 1, 2, 3 })))
    assert.equal(1, #log_dirs(tag))
    assert.is_false(exists(dir .. "/LOG"))
    s:close()
    assert.same({}, log_dirs(tag))
    assert.is_true(exists(dir .. "/LOG"))
    -- a reopen starts a new LOG on /dev/shm and the store still reads
    s = assert(synaptic.open(dir))
    assert.equal(3, #s:get_weights("e", 0))
    s:close()
    assert.same({}, log_dirs(tag))
  end)

  it("a read-only handle beside a writer leaves the writer's LOG alone", function()
    if not exists("/dev/shm") then pending("no /dev/shm here") return end
    local dir, tag = fresh()
    local w = assert(synaptic.open(dir))
    assert(w:put_weights("e", 0, synaptic.floats({ 1 })))
    local writer_dirs = log_dirs(tag)
    assert.equal(1, #writer_dirs)
    for _ = 1, 3 do
      local r = assert(synaptic.open(dir, { read_only = true }))
      assert.equal(1, #r:get_weights("e", 0))
      r:close()
    end
    assert.same(writer_dirs, log_dirs(tag))
    assert(w:put_weights("e", 0, synaptic.floats({ 2 })))
    w:close()
    assert.same({}, log_dirs(tag))
  end)

  it("what a killed read-only process left is swept by the next open", function()
    if not exists("/dev/shm") then pending("no /dev/shm here") return end
    local dir = fresh()
    local s = assert(synaptic.open(dir))
    s:close()
    -- the child stays until its stdin closes (any other process's open
    -- may sweep its directory once it is gone), then leaves with os.exit
    -- without closing the state: no __gc, the handle is never closed
    local pidfile = helpers.tmpdir("infologpid") .. "/pid"
    local code = ([[local s = assert(require("synaptic").open(%q, { read_only = true }))
      local f = io.open(%q, "w") f:write(io.open("/proc/self/stat"):read("n")) f:close()
      io.read("a") os.exit(0, false)]]):format(dir, pidfile)
    local p = io.popen(("LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q"):format(package.path, package.cpath, code), "w")
    local pid
    for _ = 1, 500 do
      local f = io.open(pidfile)
      pid = f and tonumber(f:read("a"))
      if f then f:close() end
      if pid then break end
      os.execute("sleep 0.02")
    end
    assert.is_number(pid)
    local function left()
      local q = io.popen("ls -1 " .. shm_base())
      local n = 0
      for name in q:lines() do if name:find("-r" .. pid .. "-", 1, true) then n = n + 1 end end
      q:close()
      return n
    end
    assert.equal(1, left())
    p:close()
    s = assert(synaptic.open(dir))
    s:close()
    assert.equal(0, left())
  end)
end)
