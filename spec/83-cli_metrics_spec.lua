-- `synaptic metrics` and the metric summary in `synaptic info`, through the
-- real bin/synaptic.
local synaptic = require "synaptic"
local cjson = require "cjson"
local helpers = require "helpers"
local C = require "cli_run"

local run, lines, assert_fails = C.run, C.lines, C.assert_fails

-- Values chosen to need every digit a double has, and a timestamp with a
-- fraction, so that the CSV must round-trip exactly.
local LOSS = { { 1700000000.125, 1 / 3 }, { 1700000001.5, 0.1 }, { 1700000002.75, -2.5e-7 },
               { 1700000003, 42 } }

describe("synaptic metrics", function()
  local root, db, empty

  setup(function()
    root = helpers.tmpdir("cli-metrics")
    db, empty = root .. "/db", root .. "/empty"
    local s <close> = assert(synaptic.open(db))
    for _, p in ipairs(LOSS) do s:record_metric("loss", p[2], p[1]) end
    s:record_metric("accuracy", 0.5, 10)
    s:record_metric("odd,name", 1, 20)
    local e <close> = assert(synaptic.open(empty))
  end)

  teardown(function()
    os.remove(C.errfile)
    helpers.cleanup()
  end)

  describe("without a name", function()
    it("lists every metric with its point count", function()
      local code, out, err = run("metrics", db)
      assert.equal(0, code, err)
      local l = lines(out)
      assert.matches("^name%s+points$", l[1])
      assert.matches("^accuracy%s+1$", l[2])
      assert.matches("^loss%s+4$", l[3])
      assert.matches("^odd,name%s+1$", l[4])
      assert.equal(4, #l)
    end)

    it("as CSV and as JSON, counting only the range", function()
      local code, out = run("metrics", db, "--csv")
      assert.equal(0, code)
      assert.equal('name,points\naccuracy,1\nloss,4\n"odd,name",1\n', out)
      code, out = run("metrics", db, "--json", "--from", "1700000001", "--to", "1700000002.75")
      assert.equal(0, code)
      assert.same({ { name = "accuracy", points = 0 }, { name = "loss", points = 2 },
                    { name = "odd,name", points = 0 } }, cjson.decode(out))
    end)

    it("says so when there are none", function()
      local code, out = run("metrics", empty)
      assert.equal(0, code)
      assert.matches("^no metrics in ", out)
      code, out = run("metrics", empty, "--json")
      assert.equal(0, code)
      assert.equal("[]\n", out)
    end)
  end)

  describe("with a name", function()
    it("prints CSV that reads back exactly", function()
      local code, out, err = run("metrics", db, "loss", "--csv")
      assert.equal(0, code, err)
      local l = lines(out)
      assert.equal("timestamp,value,origin", l[1])
      assert.equal(#LOSS + 1, #l)
      local s <close> = assert(synaptic.open(db, { read_only = true }))
      for i, p in ipairs(LOSS) do
        local t, v, o = l[i + 1]:match("^([^,]+),([^,]+),([^,]+)$")
        assert.equal(p[1], tonumber(t))
        assert.equal(p[2], tonumber(v))
        assert.equal(s:origin(), o)
      end
      assert.equal("1700000003,42," .. s:origin(), l[#l])
    end)

    it("names each point's origin once the store keeps it", function()
      local code, out = run("metrics", db, "loss", "--csv")
      assert.equal(0, code)
      local s <close> = assert(synaptic.open(db, { read_only = true }))
      local points = s:metrics("loss")
      local header = points[1].origin ~= nil and "timestamp,value,origin" or "timestamp,value"
      assert.equal(header, lines(out)[1])
    end)

    it("limits the points to --from and --to, bounds included", function()
      local code, out = run("metrics", db, "loss", "--csv", "--from", "1700000001.5", "--to", "1700000002.75")
      assert.equal(0, code)
      local l = lines(out)
      assert.equal(3, #l)
      assert.matches("^1700000001.5,", l[2])
      assert.matches("^1700000002.75,", l[3])
      code, out = run("metrics", db, "loss", "--csv", "--from", "1800000000")
      assert.equal(0, code)
      assert.equal("timestamp,value\n", out)   -- no points: no origin column either
    end)

    it("prints a JSON array of points", function()
      local code, out = run("metrics", db, "loss", "--json")
      assert.equal(0, code)
      local points = cjson.decode(out)
      assert.equal(#LOSS, #points)
      for i, p in ipairs(LOSS) do
        assert.is_true(math.abs(points[i].timestamp - p[1]) < 1e-3)
        assert.is_true(math.abs(points[i].value - p[2]) <= 1e-12 * math.max(1, math.abs(p[2])))
      end
      code, out = run("metrics", db, "loss", "--json", "--to", "0")
      assert.equal(0, code)
      assert.equal("[]\n", out)
    end)

    it("prints a readable table by default", function()
      local code, out = run("metrics", db, "accuracy")
      assert.equal(0, code)
      local l = lines(out)
      assert.equal(2, #l)
      assert.matches("^1970%-01%-01T00:00:10Z%s+10%s+0.5$", l[2])
    end)
  end)

  describe("failures", function()
    it("an unknown metric, naming those there are", function()
      assert_fails(1, "no metric 'nope' in .* %(it has: accuracy, loss, odd,name%)", run("metrics", db, "nope"))
      assert_fails(1, "it has none", run("metrics", empty, "loss"))
    end)

    it("bad ranges and flags", function()
      assert_fails(2, "%-%-from must be a time in Unix seconds, got 'soon'", run("metrics", db, "--from", "soon"))
      assert_fails(2, "%-%-to must be a time", run("metrics", db, "loss", "--to", "nan"))
      assert_fails(1, "%-%-from 5 is after %-%-to 4", run("metrics", db, "--from", "5", "--to", "4"))
      assert_fails(2, "can not be used together", run("metrics", db, "loss", "--csv", "--json"))
      assert_fails(1, "no store at", run("metrics", root .. "/missing"))
    end)
  end)

  describe("info", function()
    it("shows the metric names and counts", function()
      local code, out = run("info", db)
      assert.equal(0, code)
      assert.matches("\nmetrics%s+3 %(accuracy: 1 point, loss: 4 points, odd,name: 1 point%)\n", out)
      code, out = run("info", empty)
      assert.equal(0, code)
      assert.matches("\nmetrics%s+0\n", out)
    end)

    it("and in its JSON", function()
      local code, out = run("info", db, "--json")
      assert.equal(0, code)
      assert.same({ { name = "accuracy", points = 1 }, { name = "loss", points = 4 },
                    { name = "odd,name", points = 1 } }, cjson.decode(out).metrics)
      code, out = run("info", empty, "--json")
      assert.equal(0, code)
      assert.same({}, cjson.decode(out).metrics)
      assert.matches('"metrics":%[%]', out)
    end)
  end)
end)
