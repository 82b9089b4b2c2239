-- synaptic.salvage: every readable, CRC-valid record of a damaged store
-- copied into a fresh one, what was lost named; a bad blob file costs only
-- its own records, a bad block in a small column family only that block's.
-- Then random damage to random SST and blob files: salvage never crashes,
-- and everything in its output reads back and checks out.
local synaptic = require "synaptic"
local helpers = require "helpers"
local damage = require "damage"
local cli_run = require "cli_run"

local function total(report)
  local n = 0
  for _, v in pairs(report.recovered) do n = n + v end
  return n
end

-- Every record of the copy decodes: verify finds nothing but pins of lost
-- weights, and every state reads back exactly.
local function assert_sound(out)
  local s = assert(synaptic.open(out, { read_only = true }))
  local ok, report = s:verify()
  if not ok then
    for _, p in ipairs(report.problems) do
      assert.matches("pinned weights .* are missing", p.error)
    end
  end
  for i = 1, damage.STATES do
    local v = s:get_state("key" .. i)
    if v ~= nil then assert.equal(damage.state(i), v) end
  end
  for _, id in ipairs(assert(s:list_experts())) do
    for _, layer in ipairs(assert(s:layers(id))) do
      for _, version in ipairs(assert(s:weight_versions(id, layer))) do
        assert(s:get_weights(id, layer, version))
      end
    end
  end
  s:close()
end

describe("salvage", function()
  teardown(function() helpers.cleanup() end)

  it("copies an undamaged store whole, and refuses an existing target", function()
    local dir = helpers.tmpdir("sv0")
    damage.build(dir)
    local out = helpers.tmpdir("sv0out") .. "/copy"
    local ok, report = synaptic.salvage(dir, out)
    assert.is_true(ok)
    assert.same({}, report.lost)
    assert.same({}, report.unreadable)
    assert.equal(damage.STATES, report.recovered.system_state)
    assert.equal(damage.CONFIGS, report.recovered.expert_config)
    assert.equal(damage.METRICS, report.recovered.metrics)
    assert.is_false(report.repaired)
    assert_sound(out)
    local s = assert(synaptic.open(out))
    local src = assert(synaptic.open(dir, { read_only = true }))
    assert.not_equal(src:origin(), s:origin())
    assert.equal(#src:list_checkpoints(), #s:list_checkpoints())
    src:close()
    s:close()
    local again, msg = synaptic.salvage(dir, out)
    assert.is_nil(again)
    assert.matches("already exists", msg, 1, true)
    assert.has_error(function() synaptic.salvage(dir) end)
  end)

  it("a bad blob file costs only the records whose bytes are damaged", function()
    local dir = helpers.tmpdir("sv1")
    damage.build(dir)
    damage.flip_at(damage.files(dir, "%.blob$")[1], 0.5)
    local out = helpers.tmpdir("sv1out") .. "/copy"
    local ok, report = synaptic.salvage(dir, out)
    assert.is_false(ok)
    assert.equal(1, #report.lost)
    assert.matches("^neural_weights/exp%d/layer %d/[%x%-]+@%d+$", report.lost[1].where)
    assert.equal(damage.EXPERTS * damage.LAYERS + 1 - 1, report.recovered.neural_weights)
    assert.equal(damage.STATES, report.recovered.system_state)
    assert_sound(out)
  end)

  it("a bad block in a small column family costs only that block's records", function()
    local dir = helpers.tmpdir("sv2")
    damage.build(dir)
    local sst = assert(damage.sst_of(dir, "system_state"))
    damage.flip_at(sst, 0.25)
    local out = helpers.tmpdir("sv2out") .. "/copy"
    local ok, report = synaptic.salvage(dir, out)
    assert.is_false(ok)
    assert.equal(1, #report.unreadable)
    assert.matches(sst:match("[^/]+$"), report.unreadable[1].error, 1, true)
    local kept = report.recovered.system_state
    assert.is_true(kept >= damage.STATES - 60 and kept < damage.STATES, "kept " .. kept)
    assert.equal(damage.CONFIGS, report.recovered.expert_config)
    assert_sound(out)
  end)

  it("opens a store whose table footer is damaged, names the file, and salvages the rest", function()
    local dir = helpers.tmpdir("sv3")
    damage.build(dir)
    local sst = assert(damage.sst_of(dir, "system_state"))
    damage.flip(sst, #helpers.read_file(sst) - 5)
    local s, msg = synaptic.open(dir)
    assert.is_nil(s)
    assert.matches("table file " .. sst:match("[^/]+$") .. " cannot be read", msg, 1, true)
    assert.not_matches("in file .*MANIFEST", msg)
    local out = helpers.tmpdir("sv3out") .. "/copy"
    local ok, report = synaptic.salvage(dir, out)
    assert.is_false(ok)
    assert.equal(damage.CONFIGS, report.recovered.expert_config)
    assert.equal(damage.EXPERTS * damage.LAYERS + 1, report.recovered.neural_weights)
    assert_sound(out)
  end)

  it("a damaged MANIFEST: a repaired copy is read, and weights come back from their blob files", function()
    local dir = helpers.tmpdir("svm")
    damage.build(dir)
    damage.flip_at(damage.files(dir, "^MANIFEST")[1], 0.5)
    assert.is_nil(synaptic.open(dir, { read_only = true }))
    local out = helpers.tmpdir("svmout") .. "/copy"
    local ok, report = synaptic.salvage(dir, out)
    assert.is_false(ok)
    assert.is_true(report.repaired)
    assert.same({}, report.lost)
    assert.equal(damage.EXPERTS * damage.LAYERS + 1, report.recovered.neural_weights)
    assert.equal(damage.STATES, report.recovered.system_state)
    assert_sound(out)
    assert.is_nil(io.open(out .. ".salvage-scratch/CURRENT"))
  end)

  it("the CLI's salvage prints what was lost and exits 1", function()
    local dir = helpers.tmpdir("sv4")
    damage.build(dir)
    damage.flip_at(damage.files(dir, "%.blob$")[1], 0.5)
    local out = helpers.tmpdir("sv4out") .. "/copy"
    local code, text, err = cli_run.run("salvage", dir, out, "--json")
    assert.equal(1, code)
    local doc = require("cjson").decode(text)
    assert.is_false(doc.ok)
    assert.equal(1, #doc.lost)
    assert.matches("1 record lost", err, 1, true)
    code = cli_run.run("salvage", dir, out)
    assert.equal(1, code)
  end)

  it("survives random damage to random table and blob files", function()
    local base = helpers.tmpdir("svr")
    local pristine = base .. "/pristine"
    os.execute("mkdir -p " .. helpers.shq(pristine))
    damage.build(pristine)
    -- a fixed seed by default: CI must be repeatable (RocksDB asserts on some
    -- corrupt blocks in its own code, which no store code can catch); vary it
    -- with SYNAPTIC_SALVAGE_SEED to explore
    local seed = tonumber(os.getenv("SYNAPTIC_SALVAGE_SEED") or "") or 20261130
    math.randomseed(seed)
    for round = 1, 12 do
      local dir = ("%s/r%d"):format(base, round)
      os.execute(("cp -r %s %s"):format(helpers.shq(pristine), helpers.shq(dir)))
      local files = damage.files(dir, "%.sst$")
      for _, f in ipairs(damage.files(dir, "%.blob$")) do files[#files + 1] = f end
      for _ = 1, math.random(1, 4) do
        local f = files[math.random(#files)]
        local size = #helpers.read_file(f)
        for _ = 1, math.random(1, 3) do damage.flip(f, math.random(size)) end
      end
      local out = dir .. ".out"
      local ok, report = synaptic.salvage(dir, out)
      assert(ok ~= nil, ("seed %d round %d: %s"):format(seed, round, tostring(report)))
      assert.is_true(total(report) > 0)
      assert_sound(out)
    end
  end)
end)
