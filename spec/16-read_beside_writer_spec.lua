-- Read-only opens beside a running writer never report false corruption:
-- a child process writes and compacts in a loop while this one opens the
-- store read-only, verifies it and reads from it, again and again.
local synaptic = require "synaptic"
local helpers = require "helpers"

local OPENS = 35

describe("read-only beside a writer", function()
  teardown(function() helpers.cleanup() end)

  it("opens, verifies and reads without a false failure, " .. OPENS .. " times", function()
    local db = helpers.tmpdir("beside") .. "/db"
    local p = io.popen(("%s exec lua5.4 %s %s 60"):format(helpers.child_env(),
      helpers.shq(helpers.ROOT .. "/spec/support/busy_writer.lua"), helpers.shq(db)))
    local pid = p:read("n")
    local ready = p:read("l") == "" and p:read("l")
    local failures = {}
    local ok, err = pcall(function()
      assert.equal("ready", ready)
      for i = 1, OPENS do
        local s, msg = synaptic.open(db, { read_only = true, cache_mb = 1 })
        if not s then
          failures[#failures + 1] = "open " .. i .. ": " .. msg
        else
          local good, report = s:verify()
          if not good then
            local first = report and report.problems and report.problems[1]
            failures[#failures + 1] = ("verify %d: %s"):format(i,
              first and (first.where .. ": " .. first.error) or tostring(report))
          end
          local w, werr = s:get_weights("e1", 0)
          if w == nil and werr then failures[#failures + 1] = "read " .. i .. ": " .. werr end
          assert.is_not_nil(s:get_state("round"))
          s:close()
        end
      end
    end)
    os.execute("kill " .. math.tointeger(pid) .. " 2>/dev/null")
    p:close()
    assert(ok, err)
    assert.same({}, failures)
  end)

  it("says a store is in use, not damaged, when a read-write open finds it locked", function()
    local db = helpers.tmpdir("inuse") .. "/db"
    local p = io.popen(("%s exec lua5.4 %s %s 60"):format(helpers.child_env(),
      helpers.shq(helpers.ROOT .. "/spec/support/busy_writer.lua"), helpers.shq(db)))
    local pid = p:read("n")
    p:read("l")
    local ready = p:read("l")
    local s, msg = synaptic.open(db)
    os.execute("kill " .. math.tointeger(pid) .. " 2>/dev/null")
    p:close()
    assert.equal("ready", ready)
    assert.is_nil(s)
    assert.not_matches("Corruption", msg, 1, true)
    assert.not_matches("damaged", msg, 1, true)
  end)
end)
