-- verify goes on past damage and names every damaged record and every
-- unreadable stretch; `synaptic info` on a damaged store shows what it can
-- and says what it could not read.
local synaptic = require "synaptic"
local helpers = require "helpers"
local damage = require "damage"
local cli_run = require "cli_run"

local function verify(dir)
  local s = assert(synaptic.open(dir, { read_only = true }))
  local ok, report = s:verify()
  s:close()
  return ok, report
end

describe("damage reports", function()
  teardown(function() helpers.cleanup() end)

  it("a bad blob: verify names the record and checks everything after it", function()
    local dir = helpers.tmpdir("vblob")
    damage.build(dir)
    local blobs = damage.files(dir, "%.blob$")
    assert.is_true(#blobs >= 1)
    damage.flip_at(blobs[1], 0.5)
    local ok, report = verify(dir)
    assert.is_false(ok)
    local named = false
    for _, p in ipairs(report.problems) do
      if p.where:match("^neural_weights/exp%d/layer %d/[%x%-]+@%d+$") then named = true end
    end
    assert.is_true(named, "no weight record named")
    -- the walk went on: every state, config, checkpoint and metric was checked
    assert.is_true(report.records >= damage.STATES + damage.CONFIGS + damage.METRICS)
  end)

  it("a bad block in a small column family: verify names the stretch and the file, and goes on", function()
    local dir = helpers.tmpdir("vsst")
    damage.build(dir)
    local sst = assert(damage.sst_of(dir, "system_state"))
    damage.flip_at(sst, 0.25)
    local ok, report = verify(dir)
    assert.is_false(ok)
    local stretch
    for _, p in ipairs(report.problems) do
      if p.where == "system_state" then stretch = p.error end
    end
    assert.is_string(stretch)
    assert.matches("records between system_state/", stretch, 1, true)
    assert.matches(sst:match("[^/]+$"), stretch, 1, true)
    -- one block lost, not the column family
    local s = assert(synaptic.open(dir, { read_only = true }))
    local readable = 0
    for i = 1, damage.STATES do if s:get_state("key" .. i) then readable = readable + 1 end end
    s:close()
    assert.is_true(readable > damage.STATES / 2)
    assert.is_true(report.records >= readable + damage.CONFIGS + damage.METRICS)
  end)

  it("synaptic info shows what it can read and says what it could not", function()
    local dir = helpers.tmpdir("vinfo")
    damage.build(dir)
    damage.flip_at(damage.files(dir, "%.blob$")[1], 0.5)
    local code, out, err = cli_run.run("info", dir)
    assert.equal(1, code)
    assert.matches("exp4", out, 1, true)
    assert.matches("could not read:", out, 1, true)
    assert.matches("could not be read", err, 1, true)
    local jcode, jout = cli_run.run("info", dir, "--json")
    assert.equal(1, jcode)
    local doc = require("cjson").decode(jout)
    assert.is_true(#doc.unreadable >= 1)
    assert.is_true(#doc.experts >= damage.EXPERTS)
  end)
  -- RocksDB blames a table footer it cannot read on the MANIFEST and names
  -- no table, and a missing table as "Corruption: Corruption: IO error:
  -- ... 000023.ldb ... in file MANIFEST": the open names the table file.
  it("a damaged table footer: the open names the table, not the MANIFEST", function()
    local dir = helpers.tmpdir("footer")
    damage.build(dir)
    local sst = damage.sst_of(dir, "system_state")
    local d = helpers.read_file(sst)
    helpers.write_file(sst, d:sub(1, #d - 20) .. string.rep("\255", 20))
    local name = sst:match("[^/]+$")
    for _, opts in ipairs({ {}, { read_only = true } }) do
      local s, msg = synaptic.open(dir, opts)
      assert.is_nil(s)
      assert.matches("table file " .. name .. " cannot be read (its footer is damaged: ", msg, 1, true)
      assert.is_nil(msg:find("MANIFEST", 1, true))
      assert.matches("salvage", msg, 1, true)
    end
  end)

  it("a deleted table: the open names it, with no doubled prefixes", function()
    local dir = helpers.tmpdir("nosst")
    damage.build(dir)
    local sst = damage.sst_of(dir, "system_state")
    assert(os.remove(sst))
    local s, msg = synaptic.open(dir)
    assert.is_nil(s)
    assert.equal(("cannot open store at '%s': table file %s is missing (the MANIFEST lists it); "
      .. "salvage the store (synaptic.salvage) to copy out what is still readable")
      :format(dir, sst:match("[^/]+$")), msg)
  end)
end)
