-- RocksDB's info LOG cannot crash a writer (issue 19, "Crashes"): a second
-- read-write open that fails on the lock, in the same process or from
-- `synaptic compact` in another, touches nothing of the live writer's; a
-- /dev/shm that fills up while a writer is open does not abort it
-- (sn_infolog.c).
local synaptic = require "synaptic"
local helpers = require "helpers"
local cli = require "cli_run"

local function uid()
  local p = io.popen("id -u")
  local u = p:read("l")
  p:close()
  return u
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- The files under /dev/shm/synaptic-<uid> named after the store's tag.
local function shm_logs(tag)
  local out = {}
  local p = io.popen("find /dev/shm/synaptic-" .. uid() .. " -mindepth 2 -maxdepth 2 -name '*"
    .. tag .. "*' 2>/dev/null")
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  table.sort(out)
  return out
end

describe("the info LOG and a live writer", function()
  teardown(function() helpers.cleanup() end)

  local function writer(tag)
    local dir = helpers.tmpdir(tag) .. "/db"
    local w = assert(synaptic.open(dir))
    assert(w:put_weights("e", 0, { 1, 2, 3 }))
    local logs = shm_logs(dir:match("([^/]+)/db$"))
    return dir, w, logs
  end

  it("a failed second read-write open in the same process leaves the writer's LOG", function()
    if not exists("/dev/shm") then pending("no /dev/shm here") return end
    local dir, w, logs = writer("ilsame")
    assert.equal(1, #logs)
    local s, msg = synaptic.open(dir)
    assert.is_nil(s)
    assert.matches("store is already open", msg, 1, true)
    assert.same(logs, shm_logs(dir:match("([^/]+)/db$")))
    for i = 1, 200 do assert(w:put_state("k" .. i, ("v"):rep(2000))) end
    assert(w:compact())
    w:close()
    assert.is_true(exists(dir .. "/LOG"))
    assert.same({}, shm_logs(dir:match("([^/]+)/db$")))
  end)

  it("a failed `synaptic compact` from another process leaves the writer's LOG", function()
    if not exists("/dev/shm") then pending("no /dev/shm here") return end
    local dir, w, logs = writer("ilcli")
    assert.equal(1, #logs)
    local code, _, err = cli.run("compact", dir)
    assert.is_not.equal(0, code)
    assert.matches("store is already open", err, 1, true)
    assert.same(logs, shm_logs(dir:match("([^/]+)/db$")))
    assert(w:put_weights("e", 0, { 4, 5, 6 }))
    w:close()
    assert.is_true(exists(dir .. "/LOG"))
  end)

  it("a /dev/shm that fills up while a writer is open does not abort it", function()
    local me = uid()
    if me ~= "0" or not os.execute("unshare -m true 2>/dev/null") then
      pending("needs root and unshare to mount a small tmpfs") return
    end
    local db = helpers.tmpdir("ilfull") .. "/db"
    -- a private mount namespace: the small tmpfs hides the real
    -- /dev/shm/synaptic-0 from this child only
    local base = "/dev/shm/synaptic-" .. me
    local script = ("mkdir -p %s && mount -t tmpfs -o size=8m,mode=0700 tmpfs %s && %s lua5.4 %s %s %s 2000")
      :format(base, base, helpers.child_env(),
        helpers.shq(helpers.ROOT .. "/spec/support/shm_full_child.lua"), helpers.shq(db),
        base .. "/fill")
    local ok, code, out = helpers.run("unshare -m sh -c " .. helpers.shq(script))
    assert(ok, ("the writer died (%s): %s"):format(tostring(code), out))
    assert.matches("done 2000", out, 1, true)
    local s = assert(synaptic.open(db, { read_only = true }))
    assert.equal(2000, s:get_weights("e", 2000 % 8)[1])
    s:close()
  end)
end)
