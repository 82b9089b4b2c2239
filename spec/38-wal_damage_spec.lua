-- WAL damage is never silent. A store whose WAL is damaged before its end,
-- or whose newest WAL is gone after a crash, fails to open with a message
-- naming the file; recover = "point_in_time" opens it anyway and says what
-- was dropped. A record cut off at the end of the WAL, as a crash leaves
-- it, is normal and opens as before.
local synaptic = require "synaptic"
local helpers = require "helpers"
local writer = require "wal_writer"

local N = 200

-- A store whose N writes live only in its WAL; returns its path and WAL file.
local function crashed_store(tag)
  local db = helpers.tmpdir(tag) .. "/db"
  local ok, code, out = helpers.run(("%s lua5.4 %s %s %d"):format(helpers.child_env(),
    helpers.shq(helpers.ROOT .. "/spec/support/wal_writer.lua"), helpers.shq(db), N))
  assert(ok, ("writer failed (%s): %s"):format(tostring(code), out))
  local wals = {}
  for _, name in ipairs(helpers.listdir(db)) do
    if name:match("^%d+%.log$") then wals[#wals + 1] = name end
  end
  assert.equal(1, #wals)
  return db, wals[1]
end

local function found(s)
  local n = 0
  for i = 1, N do
    local v = s:get_state("k" .. i)
    if v ~= nil then
      assert.equal(writer.value(i), v)
      n = n + 1
    end
  end
  return n
end

local function rewrite(file, fn)
  helpers.write_file(file, fn(helpers.read_file(file)))
end

local damages = {
  ["a flipped byte in the middle"] = function(d)
    local at = #d // 2
    return d:sub(1, at - 1) .. string.char(d:byte(at) ~ 0xff) .. d:sub(at + 1)
  end,
  ["a truncated middle"] = function(d)
    local at = #d // 2
    return d:sub(1, at) .. d:sub(at + 1001)
  end,
}

describe("WAL damage", function()
  teardown(function() helpers.cleanup() end)

  for what, damage in pairs(damages) do
    it(what .. " fails the open naming the WAL; recover opens it and names what was dropped", function()
      local db, wal = crashed_store("wal")
      rewrite(db .. "/" .. wal, damage)
      local s, msg = synaptic.open(db)
      assert.is_nil(s)
      assert.matches(wal, msg, 1, true)
      assert.matches("recover", msg, 1, true)
      -- the refusal changed nothing: a second try says the same
      local s2, msg2 = synaptic.open(db)
      assert.is_nil(s2)
      assert.matches(wal, msg2, 1, true)

      local r, report = synaptic.open(db, { recover = "point_in_time" })
      assert.is_not_nil(r, report)
      assert.is_table(report)
      assert.equal(wal, report.wal)
      assert.is_true(report.offset > 0)
      assert.is_string(report.error)
      assert.is_true(report.dropped_bytes > 0)
      local kept = found(r)
      assert.is_true(kept > 0 and kept < N)
      assert.is_true(report.dropped_writes <= N - kept)
      for _, name in ipairs(report.dropped) do assert.matches("^system_state/k%d+$", name) end
      assert.is_true(r:verify())
      r:close()
      -- recovered: it opens normally from now on, with what it kept
      local again = assert(synaptic.open(db))
      assert.equal(kept, found(again))
      again:close()
    end)
  end

  -- A store the last release closed cleanly still held its writes in its
  -- WAL (a close did not flush): the crash writer's store without its
  -- SYNAPTIC-OPEN marker is exactly that. A flipped byte in a record's
  -- payload leaves the records after it readable: each is counted and
  -- named as dropped, and the damaged one counted, so what the report says
  -- was dropped is what was lost.
  it("a flipped byte in a cleanly closed store's WAL: every path names the file, the offset and what was dropped", function()
    local db, wal = crashed_store("walclean")
    assert(os.remove(db .. "/SYNAPTIC-OPEN"))
    rewrite(db .. "/" .. wal, damages["a flipped byte in the middle"])
    local copy = db .. "-copy"
    assert(os.execute(("cp -r %s %s"):format(helpers.shq(db), helpers.shq(copy))))
    local s, msg = synaptic.open(db)
    assert.is_nil(s)
    assert.matches("WAL " .. wal .. " is damaged at byte %d+ %(checksum mismatch%)", msg)
    assert.matches("1 damaged record, %d+ writes still readable", msg)

    local r, report = synaptic.open(db, { recover = "point_in_time" })
    assert.is_not_nil(r, report)
    assert.is_table(report)
    assert.equal(wal, report.wal)
    local kept = found(r)
    r:close()
    assert.equal(1, report.damaged_records)
    assert.is_true(report.dropped_writes > 0)
    assert.equal(N - kept, report.dropped_writes + report.damaged_records)

    local ok, sreport = synaptic.salvage(copy, copy .. "-out")
    assert.is_false(ok)
    assert.matches(wal, sreport.wal, 1, true)
    -- the named writes, then the damaged record
    assert.equal(N - kept, #sreport.lost)
    assert.matches("^1 damaged WAL record", sreport.lost[#sreport.lost].where)
  end)

  -- RocksDB takes a WAL cut short for a torn tail and opens without a
  -- word. A WAL it was writing when the process died keeps the space
  -- preallocated past its end; a cut one (truncated, rewritten, copied)
  -- has none. What the cut took cannot be counted: no dropped_writes.
  it("a WAL cut to half after a crash fails the open; recover says what is known", function()
    local db, wal = crashed_store("walcut")
    rewrite(db .. "/" .. wal, function(d)
      -- cut at the start of a record: no damage for a reader to find
      local at = #d // 2
      return d:sub(1, at)
    end)
    local size = #helpers.read_file(db .. "/" .. wal)
    local s, msg = synaptic.open(db)
    assert.is_nil(s)
    assert.matches(("WAL %s is cut short at byte %d"):format(wal, size), msg, 1, true)
    assert.matches("how many cannot be told", msg, 1, true)
    local r, report = synaptic.open(db, { recover = "point_in_time" })
    assert.is_not_nil(r, report)
    assert.is_table(report)
    assert.equal(wal, report.wal)
    assert.equal(size, report.offset)
    assert.matches("^cut short", report.error)
    assert.is_nil(report.dropped_writes)
    assert.is_true(found(r) < N)
    r:close()
    assert(synaptic.open(db)):close()
  end)

  it("a deleted WAL after a crash fails the open naming it; recover opens without it", function()
    local db, wal = crashed_store("walgone")
    assert(os.remove(db .. "/" .. wal))
    local s, msg = synaptic.open(db)
    assert.is_nil(s)
    assert.matches(wal, msg, 1, true)
    assert.matches("missing", msg, 1, true)
    local r, report = synaptic.open(db, { recover = "point_in_time" })
    assert.is_not_nil(r, report)
    assert.equal(wal, report.wal)
    assert.matches("missing", report.error, 1, true)
    assert.equal(0, found(r))
    r:close()
    assert(synaptic.open(db)):close()
  end)

  it("a torn tail, as a crash leaves it, opens as before", function()
    local db, wal = crashed_store("waltail")
    -- the end of the last write never reached the disk, the space
    -- RocksDB preallocated past it did (fallocate -n: keep the size)
    local file = db .. "/" .. wal
    rewrite(file, function(d) return d:sub(1, #d - 50) end)
    assert(os.execute(("fallocate -n -o %d -l 1048576 %s"):format(
      #helpers.read_file(file), helpers.shq(file))))
    local s, report = synaptic.open(db)
    assert.is_not_nil(s, report)
    assert.is_nil(report)
    assert.equal(N - 1, found(s))
    assert.is_true(s:verify())
    s:close()
  end)

  it("an intact WAL after a crash opens with everything, with or without recover", function()
    local db = crashed_store("walok")
    local s, report = synaptic.open(db, { recover = "point_in_time" })
    assert.is_not_nil(s, report)
    assert.is_nil(report)
    assert.equal(N, found(s))
    s:close()
    -- a clean close leaves no marker of an open store behind
    assert.is_nil(io.open(db .. "/SYNAPTIC-OPEN"))
  end)

  it("recover takes only \"point_in_time\"", function()
    local db = helpers.tmpdir("walopt")
    assert.has_error(function() synaptic.open(db, { recover = "yes" }) end,
      'open: option recover must be "point_in_time"')
    assert.has_error(function() synaptic.open(db, { recover = true }) end)
    assert(synaptic.open(db, { recover = false })):close()
  end)
end)
