-- Progress callbacks: store:verify{progress = fn} is called by the core
-- between records (its errors come back unchanged once the core has let go
-- of its iterators; a close() from it stops the walk cleanly), backup and
-- restore report their start and end in bytes; and the command's bar is
-- drawn only on a terminal and never with --json.
local synaptic = require "synaptic"
local helpers = require "helpers"
local C = require "cli_run"

local q = helpers.shq

local function open(path)
  return assert(synaptic.open(path, { write_buffer_mb = 1, cache_mb = 1 }))
end

describe("progress", function()
  local root, db

  setup(function()
    root = helpers.tmpdir("progress")
    db = root .. "/db"
    local s <close> = open(db)
    for i = 1, 700 do s:record_metric("m", i, i) end
    s:put_weights("x", 1, helpers.weights(256, 1), helpers.weights(16, 2))
  end)

  teardown(helpers.cleanup)

  it("verify calls back with growing counts and ends at done == total == records", function()
    local s <close> = open(db)
    local calls = {}
    local ok, report = s:verify { progress = function(done, total) calls[#calls + 1] = { done, total } end }
    assert.is_true(ok)
    assert.is_true(#calls >= 3, "too few calls: " .. #calls)
    for i, c in ipairs(calls) do
      assert.is_true(c[1] <= c[2])
      if i > 1 then assert.is_true(c[1] > calls[i - 1][1]) end
    end
    assert.same({ report.records, report.records }, calls[#calls])
    assert.is_true(s:verify {})               -- no progress: the same walk
  end)

  it("verify passes a callback's error on unchanged, and the store stays usable", function()
    local s <close> = open(db)
    local boom = setmetatable({}, { __tostring = function() return "boom" end })
    local ok, err = pcall(s.verify, s, { progress = function(done) if done > 0 then error(boom) end end })
    assert.is_false(ok)
    assert.equal(boom, err)
    assert.has_error(function() s:verify { progress = function() error("plain", 0) end } end, "plain")
    assert.is_true((s:verify()))
    assert.has_error(function() s:verify { progress = 1 } end, "verify: opts.progress must be a function, not a number")
  end)

  it("verify stops cleanly when the callback closes the store, and says so", function()
    local s = open(db)
    local calls = 0
    -- the store is in use by verify: the close waits, the walk stops, the
    -- core lets go of its iterators, then the store closes and verify raises
    assert.has_error(function()
      s:verify { progress = function(done)
        calls = calls + 1
        if done > 0 then assert.is_true(s:close()) end
      end }
    end, "verify: the store was closed by the progress callback")
    assert.equal(2, calls)                     -- (0, total), then the close at 256
    assert.equal("synaptic.store (closed)", tostring(s))
    assert.is_true(s:close())
    local again <close> = open(db)
    assert.is_true((again:verify()))
  end)

  it("backup and restore report their start and end in bytes", function()
    local s <close> = open(db)
    local calls = {}
    local id = assert(s:backup(root .. "/bk", { progress = function(d, t) calls[#calls + 1] = { d, t } end }))
    assert.equal(2, #calls)
    assert.equal(0, calls[1][1])
    assert.is_true(calls[1][2] > 0)
    assert.same({ calls[1][2], calls[1][2] }, calls[2])

    calls = {}
    assert.is_true(synaptic.restore_backup(root .. "/bk", root .. "/r1", id,
      { progress = function(d, t) calls[#calls + 1] = { d, t } end }))
    local size = synaptic.list_backups(root .. "/bk")[1].size
    assert.same({ { 0, size }, { size, size } }, calls)
    calls = {}
    assert.is_true(synaptic.restore_backup(root .. "/bk", root .. "/r2",
      { progress = function(d, t) calls[#calls + 1] = { d, t } end }))
    assert.same({ { 0, size }, { size, size } }, calls)
    assert.has_error(function() s:backup(root .. "/bk", { progress = "x" }) end,
                     "backup: opts.progress must be a function, not a string")
    assert.has_error(function() s:backup(root .. "/bk", { progress = function() error("stop", 0) end }) end, "stop")
  end)

  describe("on the command line", function()
    local function on_tty(...)
      local words = {}
      for i, a in ipairs { ... } do words[i] = q(a) end
      local p = io.popen("script -qec " .. q(C.ENV .. q(C.BIN) .. " " .. table.concat(words, " ")) .. " /dev/null")
      local out = p:read("a")
      p:close()
      return out
    end

    it("draws a bar with percent, amount and rate on a terminal only", function()
      if not os.execute("command -v script >/dev/null 2>&1") then return pending("no script(1)") end
      local tty = on_tty("verify", db)
      assert.matches("verifying .*%[#+%] 100%%  %d+/%d+ records", tty)
      assert.matches("/s", tty)
      assert.matches("ok: %d+ records verified", tty)
      tty = on_tty("backup", db, root .. "/bk-cli")
      assert.matches("backing up .*100%%  [%d.]+ [KMG]?i?B/[%d.]+ [KMG]?i?B", tty)

      tty = on_tty("salvage", db, root .. "/salvaged-cli")
      assert.matches("salvaging .*%[#+%] 100%%  [%d.]+ [KMG]?i?B/[%d.]+ [KMG]?i?B", tty)
      assert.matches("salvaged .* records recovered", tty)
      tty = on_tty("salvage", db, root .. "/salvaged-json", "--json")
      assert.not_matches("salvaging", tty)

      local code, out = C.run("backup", db, root .. "/bk-cli")
      assert.equal(0, code)
      assert.matches("^%d+\n$", out)             -- no tty: the id and nothing else
      tty = on_tty("verify", db, "--json")
      assert.not_matches("verifying", tty)
      assert.not_matches("\27%[K", tty)
    end)
  end)
end)
