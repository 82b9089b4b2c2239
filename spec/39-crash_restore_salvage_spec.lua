-- A restore_backup or a salvage SIGKILLed part-way through never costs the
-- thing it reads from, never leaves a target that passes for a good store
-- while holding something else, and never stops the next run from working.
--
-- Delays are a fixed list, not random: CI must be repeatable, and the list
-- spans the whole run so the kills land at every stage. What they showed:
-- a restore killed while it verifies the backup (the first ~half) leaves
-- the target as it was; killed while RocksDB copies, it used to leave files
-- without CURRENT, which open refuses, or an empty directory (a new, empty
-- store on open): it now copies into a sibling and puts it in place in one
-- step, so the target stays as it was. A salvage is mostly killed while it copies and repairs its scratch
-- copy, which it left behind (and which blocked the next salvage into the
-- same out until sn_salvage.c removed a leftover first); killed later, it
-- leaves a half-made out, which salvage refuses as "already exists".
local synaptic = require "synaptic"
local helpers = require "helpers"
local damage = require "damage"

local shq, read_file, listdir = helpers.shq, helpers.read_file, helpers.listdir
local CHILD = helpers.ROOT .. "/spec/support/crash_restore_child.lua"

-- Runs the child (mode "restore" or "salvage", from a to b), SIGKILLs it
-- delay_ms after it printed "go" (a busy wait on synaptic.now(): no sleep
-- has that resolution), and returns the child's "done ..." line if it
-- finished before the kill, else nil.
local function kill_after(mode, a, b, delay_ms)
  local errfile = os.tmpname()
  local p = assert(io.popen(helpers.child_env() .. "exec lua5.4 " .. shq(CHILD) .. " " .. mode ..
    " " .. shq(a) .. " " .. shq(b) .. " 2>" .. shq(errfile), "r"))
  local pid = tonumber(p:read("l"))
  local go = p:read("l")
  if not pid or go ~= "go" then
    p:close()
    local err = read_file(errfile)
    os.remove(errfile)
    error("the " .. mode .. " child did not start: " .. err)
  end
  local deadline = synaptic.now() + delay_ms / 1000
  while synaptic.now() < deadline do end
  -- the child is not reaped before p:close(), so its pid cannot be reused
  -- even when it has already exited: kill is safe either way
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  local done
  for line in p:lines() do
    if line:match("^done ") then done = line end
  end
  p:close()
  os.remove(errfile)
  return done
end

-- Everything a store holds that these tests write: experts, every version
-- of every layer (weights and bias bytes), and the states.
local function contents(s, states)
  local parts = {}
  for _, id in ipairs(assert(s:list_experts())) do
    for _, layer in ipairs(assert(s:layers(id))) do
      for _, v in ipairs(assert(s:weight_versions(id, layer))) do
        local w, b = assert(s:get_weights(id, layer, v))
        parts[#parts + 1] = ("%s/%d/%d:%s:%s"):format(id, layer, v, w:tobytes(), b and b:tobytes() or "")
      end
    end
  end
  for _, k in ipairs(states) do parts[#parts + 1] = k .. "=" .. tostring(s:get_state(k)) end
  return table.concat(parts, "\n")
end

local function exists(path)
  return os.execute("test -e " .. shq(path)) == true
end

describe("a SIGKILLed restore_backup", function()
  local STATES = { "k", "name" }
  local root, bk, old_bk, want, old, empty

  -- The store restored: 8 layers of 0.5 MB each, one blob file per layer
  -- (write_buffer_mb = 1), so a restore copies ~4 MB in ~20 files. The
  -- "old" store is what a forced restore replaces in half of the rounds.
  setup(function()
    root = helpers.tmpdir("crashrb")
    bk, old_bk = root .. "/bk", root .. "/oldbk"
    local s = assert(synaptic.open(root .. "/db", { compression = "none", write_buffer_mb = 1 }))
    for l = 0, 7 do assert(s:put_weights("big", l, helpers.weights(125000, l + 1), { l })) end
    assert(s:put_state("k", 1))
    assert(s:put_state("name", "restored"))
    want = contents(s, STATES)
    assert(s:backup(bk))
    s:close()
    s = assert(synaptic.open(root .. "/old", { compression = "none", write_buffer_mb = 1 }))
    for l = 0, 3 do assert(s:put_weights("old", l, helpers.weights(100000, 100 + l))) end
    assert(s:put_state("name", "old"))
    old = contents(s, STATES)
    assert(s:backup(old_bk))
    s:close()
    s = assert(synaptic.open(root .. "/empty"))
    empty = contents(s, STATES)
    s:close()
  end)
  teardown(function() helpers.cleanup() end)

  -- What a killed restore left at path: "refused" (with the message),
  -- "backup" or "old" (opens, verifies, and holds exactly that store), or
  -- "empty": RocksDB made the target directory, or emptied it, and was
  -- killed before its first file was copied; an empty directory opens as a
  -- new, empty store, exactly as the absent path would. Anything else that
  -- opens fails the test: a silent wrong store.
  local function judge(path)
    local s, msg = synaptic.open(path)
    if not s then
      assert.is_string(msg)
      assert(msg:find(path, 1, true), "the refusal does not name the store: " .. msg)
      return "refused", msg
    end
    local ok, report = s:verify()
    local got = contents(s, STATES)
    s:close()
    assert(ok, "a killed restore left a store that opens but does not verify: " ..
      tostring(report and report.problems[1] and report.problems[1].error))
    if got == want then return "backup" end
    if got == old then return "old" end
    if got == empty then return "empty" end
    error(("a killed restore left a store at %s that opens and verifies with other contents (%d bytes): %s"):format(
      path, #got, got:sub(1, 200)))
  end

  it("leaves the backup whole, the target refused or exact, and restores again", function()
    local delays = { 0, 5, 10, 14, 18, 22, 26, 30, 35, 45 }
    local seen, killed = {}, 0
    for round, delay in ipairs(delays) do
      local target = ("%s/t%d"):format(root, round)
      -- odd rounds replace an older store (force), even ones fill a fresh path
      if round % 2 == 1 then assert(synaptic.restore_backup(old_bk, target)) end
      local done = kill_after("restore", bk, target, delay)
      -- (a) the backup is only read: it still verifies whole
      local ok, report = synaptic.verify_backup(bk)
      assert(ok, ("round %d: backup damaged: %s"):format(round,
        tostring(report and report.problems and report.problems[1] and report.problems[1].error)))
      -- (c) the killed restore's target: refused with a message, or exact
      local what = exists(target) and judge(target) or "absent"
      if done then assert.equal("backup", what) end
      if not done then killed = killed + 1 end
      -- the restore goes into a sibling put in place in one step: a kill
      -- leaves the target as it was (old, or absent), never half-copied
      -- or an empty directory
      assert.is_not.equal("refused", what)
      assert.is_not.equal("empty", what)
      seen[what] = (seen[what] or 0) + 1
      -- (b) a forced restore over whatever was left works and is exact
      assert.is_true(synaptic.restore_backup(bk, target, { force = true }))
      assert.equal("backup", judge(target))
    end
    -- the kills must have landed inside the restore at least once, or this
    -- test proves nothing
    assert(killed > 0, "no kill landed mid-restore")
  end)

  -- Random kills hit a few of the restore's states; this walks all of
  -- them. RocksDB's restore (one background operation, the default) first
  -- deletes what is in the target, then copies the backup's files one by
  -- one in the order its meta file lists them: table and blob files, the
  -- MANIFEST, CURRENT, OPTIONS, the (empty: backups flush first) WAL. So
  -- every state a kill can leave is a prefix of that list plus part of the
  -- next file. Strongest property that holds: without CURRENT the store is
  -- refused ("holds files but no CURRENT"); from CURRENT on, every file the
  -- store needs is there and it opens, verifies and equals the backup.
  it("every prefix of the restore's copy is refused or is the whole backup", function()
    local meta = read_file(bk .. "/meta/1")
    local files = {}
    for name in meta:gmatch("(%S+) crc32 %d+") do files[#files + 1] = name end
    -- private/1/NAME is NAME; shared_checksum/000043_<id>_<size>.sst is 000043.sst
    local function db_name(f)
      local num, ext = f:match("^shared_checksum/(%d+)_.*(%.%a+)$")
      return f:match("^private/%d+/(.+)$") or (num .. ext)
    end
    local current_at
    for i, f in ipairs(files) do
      if db_name(f) == "CURRENT" then current_at = i end
    end
    assert.is_number(current_at)
    os.execute("mkdir -p " .. shq(root .. "/nothing-yet"))
    assert.equal("empty", judge(root .. "/nothing-yet"))
    for k = 0, #files do
      local dir = ("%s/prefix%d"):format(root, k)
      os.execute("mkdir -p " .. shq(dir))
      for i = 1, k do helpers.write_file(dir .. "/" .. db_name(files[i]), read_file(bk .. "/" .. files[i])) end
      if k < #files then   -- the next file, cut in half
        local data = read_file(bk .. "/" .. files[k + 1])
        helpers.write_file(dir .. "/" .. db_name(files[k + 1]), data:sub(1, #data // 2))
      end
      local what, msg = judge(dir)
      if k < current_at then
        -- "holds files but no CURRENT", or a half CURRENT: "CURRENT file
        -- does not end with newline"
        assert.equal("refused", what)
        assert.matches("CURRENT", msg, 1, true)
      else
        assert.equal("backup", what)
      end
    end
  end)
end)

describe("a SIGKILLed salvage", function()
  local base, src, before, reference

  -- The counts that say what a salvage did, as one comparable string.
  local function counts(ok, report)
    assert(ok ~= nil, tostring(report))
    local names = {}
    for cf in pairs(report.recovered) do names[#names + 1] = cf end
    table.sort(names)
    local parts = { tostring(ok), tostring(report.repaired), #report.lost, #report.unreadable }
    for _, cf in ipairs(names) do parts[#parts + 1] = cf .. "=" .. report.recovered[cf] end
    return table.concat(parts, " ")
  end

  -- Every file of the source and its bytes. RocksDB's info LOG is left
  -- out: a read-only open may append to it, and it holds no data.
  local function snapshot(dir)
    local t = {}
    for _, n in ipairs(listdir(dir)) do
      if not n:match("^LOG") then t[n] = read_file(dir .. "/" .. n) end
    end
    return t
  end

  -- A store with a damaged MANIFEST: salvage cannot open it even leniently,
  -- so it copies it to out .. ".salvage-scratch" and repairs that copy,
  -- which gives a kill the most to leave behind.
  setup(function()
    base = helpers.tmpdir("crashsv")
    src = base .. "/src"
    os.execute("mkdir -p " .. shq(src))
    damage.build(src)
    damage.flip_at(damage.files(src, "^MANIFEST")[1], 0.5)
    before = snapshot(src)
    reference = counts(synaptic.salvage(src, base .. "/reference"))
    assert.matches("^false true ", reference)   -- it did go through the repair
  end)
  teardown(function() helpers.cleanup() end)

  it("leaves the source untouched; a leftover out or scratch never blocks the next run", function()
    local delays = { 0, 10, 25, 45, 70, 100, 140, 200, 300 }
    local seen = { out = 0, scratch = 0, finished = 0 }
    for round, delay in ipairs(delays) do
      local out = ("%s/out%d"):format(base, round)
      local done = kill_after("salvage", src, out, delay)
      if done then seen.finished = seen.finished + 1 end
      -- (a) salvage only reads its source
      assert.same(before, snapshot(src))
      -- (b) a salvage into a fresh path reports what an uninterrupted one did
      assert.equal(reference, counts(synaptic.salvage(src, out .. "-fresh")))
      -- (c) a killed salvage's out is never silently reused: salvage refuses
      -- it; once it is removed, salvage runs there again, over whatever
      -- scratch copy the kill left
      if exists(out) then
        seen.out = seen.out + 1
        local ok, msg = synaptic.salvage(src, out)
        assert.is_nil(ok)
        assert.matches("already exists", msg, 1, true)
        os.execute("rm -rf " .. shq(out))
      end
      if exists(out .. ".salvage-scratch") then seen.scratch = seen.scratch + 1 end
      assert.equal(reference, counts(synaptic.salvage(src, out)))
      assert.is_false(exists(out .. ".salvage-scratch"))
    end
    assert(seen.scratch > 0, "no kill left a scratch copy behind: the test proves nothing about it")
    assert(seen.finished < #delays, "every salvage finished before its kill")
  end)
end)
