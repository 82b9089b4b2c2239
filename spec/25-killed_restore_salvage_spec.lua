-- A killed salvage or restore never leaves a store that opens normally with
-- part of what it should hold, and a forced restore never swaps a store out
-- from under a read-only handle in another process (issue 19, "Data lost
-- without a word"). Salvage builds beside its output and renames it there
-- at the end; a restore goes into a sibling put in place in one step.
local synaptic = require "synaptic"
local helpers = require "helpers"

local shq = helpers.shq
local CHILD = helpers.ROOT .. "/spec/support/crash_restore_child.lua"

local function exists(path)
  return os.execute("test -e " .. shq(path)) == true
end

-- As in spec 49: the child's "done" line, or nil when the kill came first.
local function kill_after(mode, a, b, delay_ms)
  local p = assert(io.popen(helpers.child_env() .. "exec lua5.4 " .. shq(CHILD) .. " " .. mode ..
    " " .. shq(a) .. " " .. shq(b) .. " 2>/dev/null", "r"))
  local pid = tonumber(p:read("l"))
  assert(pid and p:read("l") == "go", "the child did not start")
  local deadline = synaptic.now() + delay_ms / 1000
  while synaptic.now() < deadline do end
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  local done
  for line in p:lines() do
    if line:match("^done ") then done = line end
  end
  p:close()
  return done
end

local LAYERS = 40

local function layers_in(path)
  local s = assert(synaptic.open(path, { read_only = true }))
  local n = #assert(s:layers("e"))
  s:close()
  return n
end

describe("killed part-way", function()
  local root, src, bk
  setup(function()
    root = helpers.tmpdir("killed")
    src, bk = root .. "/src", root .. "/bk"
    local s = assert(synaptic.open(src, { compression = "none", write_buffer_mb = 1 }))
    for l = 1, LAYERS do assert(s:put_weights("e", l, helpers.weights(20000, l))) end
    for i = 1, 200 do assert(s:put_state("k" .. i, i)) end
    assert(s:backup(bk))
    s:close()
  end)
  teardown(function() helpers.cleanup() end)

  it("a salvage leaves no output, or the whole one", function()
    local killed = 0
    for round, delay in ipairs({ 5, 20, 40, 60, 90, 120, 160, 220, 300 }) do
      local out = ("%s/salv%d"):format(root, round)
      local done = kill_after("salvage", src, out, delay)
      if not done then killed = killed + 1 end
      -- a kill may land after the final rename and before the child says
      -- "done": what is there must then be whole, never a part
      if exists(out) then
        assert.equal(LAYERS, layers_in(out), ("round %d: a killed salvage left part of %s"):format(round, out))
      end
      -- and the next salvage into the same path runs over what was left
      if not exists(out) then assert(synaptic.salvage(src, out)) end
      assert.equal(LAYERS, layers_in(out))
    end
    assert.is_true(killed > 0, "no kill landed inside a salvage")
  end)

  it("a restore into a fresh path leaves nothing there, or the whole backup", function()
    local killed = 0
    for round, delay in ipairs({ 2, 6, 10, 14, 18, 24, 30, 40, 60 }) do
      local target = ("%s/rest%d"):format(root, round)
      local done = kill_after("restore", bk, target, delay)
      if not done then killed = killed + 1 end
      -- a kill may land after the final rename and before the child says
      -- "done": what is there must then be whole, never a part
      if exists(target) then
        assert.equal(LAYERS, layers_in(target), ("round %d: a killed restore left part of %s"):format(round, target))
      end
      assert(synaptic.restore_backup(bk, target, { force = true }))
      assert.equal(LAYERS, layers_in(target))
    end
    assert.is_true(killed > 0, "no kill landed inside a restore")
  end)

  it("restore_backup with force refuses a store open read-only in another process", function()
    local target = root .. "/held"
    assert(synaptic.restore_backup(bk, target))
    assert(synaptic.open(target)):close()   -- a read-write open creates SYNAPTIC-READERS
    local ready = root .. "/held-ready"
    local code = ([[local s = assert(require("synaptic").open(%q, { read_only = true }))
      io.open(%q, "w"):close() io.read("a") s:close()]]):format(target, ready)
    local p = io.popen(("%s lua5.4 -e %s"):format(helpers.child_env(), shq(code)), "w")
    for _ = 1, 500 do
      if exists(ready) then break end
      os.execute("sleep 0.02")
    end
    assert.is_true(exists(ready))
    local ok, msg = synaptic.restore_backup(bk, target, { force = true })
    p:close()
    assert.is_nil(ok)
    assert.equal("cannot restore: store at '" .. target .. "' is open read-only by another process", msg)
    -- once the reader has gone, the same restore goes ahead
    assert.is_true(synaptic.restore_backup(bk, target, { force = true }))
    assert.equal(LAYERS, layers_in(target))
  end)
end)
