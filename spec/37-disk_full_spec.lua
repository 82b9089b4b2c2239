-- A full disk: every write fails with a message saying so, nothing
-- acknowledged is lost, the process never aborts, the store still opens
-- read-only and reads, and writes work again once space is freed (on the
-- same handle, too). The store lives on a small tmpfs; the writes run in a
-- child process so that an abort inside RocksDB fails the spec instead of
-- killing busted. Mounting needs root (CI runs as root): elsewhere the
-- spec is pending with the reason, never passed.
local helpers = require "helpers"
local child = require "disk_full_child"

local ROOT = helpers.ROOT
local CHILD = ROOT .. "/spec/support/disk_full_child.lua"

-- Runs the child; its stdout lines and how it ended ("exit", 0 when fine).
local function run_child(...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = helpers.shq(tostring(a)) end
  local cmd = ("cd %s && %s lua5.4 %s %s 2>&1"):format(helpers.shq(ROOT), helpers.child_env(),
                                                     helpers.shq(CHILD), table.concat(args, " "))
  local p = io.popen(cmd)
  local lines = {}
  for line in p:lines() do lines[#lines + 1] = line end
  local _, how, code = p:close()
  return lines, how, code
end

-- What the fill child acknowledged: states by index, weight versions by layer.
local function acknowledged(lines)
  local states, weights, fails, top = {}, {}, {}, 0
  for _, line in ipairs(lines) do
    local i = line:match("^ack state (%d+)$")
    if i then states[tonumber(i)] = true; top = math.max(top, tonumber(i)) end
    local layer, v, seq = line:match("^ack weights (%d+) (%d+) (%d+)$")
    if layer then weights[layer .. "/" .. v] = tonumber(seq) end
    local msg = line:match("^fail (.*)$")
    if msg then fails[#fails + 1] = msg end
  end
  return states, weights, fails, top
end

-- Every acknowledged record is there, with its value.
local function assert_all_read(db, states, weights, top)
  local lines, how, code = run_child("read", db, top + 10)
  assert.are.same({ "exit", 0 }, { how, code }, table.concat(lines, "\n"))
  local got_states, got_weights = {}, {}
  for _, line in ipairs(lines) do
    local i, v = line:match("^state (%d+) (.*)$")
    if i then got_states[tonumber(i)] = v end
    local layer, version, n = line:match("^weights (%d+) (%d+) (%d+)$")
    if layer then got_weights[layer .. "/" .. version] = tonumber(n) end
  end
  for i in pairs(states) do assert.equal(child.state(i), got_states[i], "state k" .. i) end
  for key, seq in pairs(weights) do
    assert.equal(#child.weights(seq), got_weights[key], "weights " .. key)
  end
end

describe("a full disk", function()
  local mnt, mounted, why_not

  setup(function()
    mnt = helpers.tmpdir("full")
    local ok, _, out = helpers.run("mount -t tmpfs -o size=8m tmpfs " .. helpers.shq(mnt))
    mounted = ok
    why_not = not ok and ("cannot mount a tmpfs here (needs root): " .. out:gsub("%s+$", ""))
  end)

  teardown(function()
    if mounted then os.execute("umount " .. helpers.shq(mnt)) end
    helpers.cleanup()
  end)

  it("fails each write with 'no space', aborts nothing, loses nothing, and recovers", function()
    if not mounted then return pending(why_not) end
    local db = mnt .. "/db"
    local lines, how, code = run_child("fill", db)
    assert.are.same({ "exit", 0 }, { how, code }, table.concat(lines, "\n", math.max(1, #lines - 5)))
    local states, weights, fails, top = acknowledged(lines)
    assert.is_true(top > 10)
    assert.equal(4, #fails)
    for _, msg in ipairs(fails) do assert.matches("No space left on device", msg, 1, true) end

    -- fill what is left: not one byte free
    os.execute(("dd if=/dev/zero of=%s bs=64k >/dev/null 2>&1"):format(helpers.shq(mnt .. "/filler")))
    assert_all_read(db, states, weights, top)
    local w = run_child("write", db)
    assert.is_not_nil(w[1])
    if w[1] == "open ok" then
      assert.matches("^write fail .*No space left on device", w[2])
    else
      assert.matches("^open fail .*No space left on device.*read_only = true", w[1])
    end

    -- space freed: a new open writes again, and still has everything
    os.remove(mnt .. "/filler")
    w = run_child("write", db)
    assert.same({ "open ok", "write ok" }, w)
    assert_all_read(db, states, weights, top)
  end)

  it("lets the same handle write again once space is freed", function()
    if not mounted then return pending(why_not) end
    local db = mnt .. "/db2"
    os.execute(("rm -rf %s; dd if=/dev/zero of=%s bs=64k count=40 >/dev/null 2>&1")
      :format(helpers.shq(mnt .. "/db"), helpers.shq(mnt .. "/filler2")))
    local lines, how, code = run_child("fill", db, mnt .. "/filler2")
    assert.are.same({ "exit", 0 }, { how, code }, table.concat(lines, "\n", math.max(1, #lines - 5)))
    local states, weights, fails, top = acknowledged(lines)
    assert.equal(4, #fails)
    local recovered
    for _, line in ipairs(lines) do recovered = recovered or line:match("^recovered (%d+)$") end
    assert.is_not_nil(recovered, table.concat(lines, "\n", math.max(1, #lines - 5)))
    assert_all_read(db, states, weights, top)
  end)
end)
