-- Smaller defects met by a new user (issue 20): get_weights' version 0 and
-- its argument errors, RocksDB's run-together sstable message, verify and
-- salvage on a truncated blob file, import into an expert without a config,
-- the report's timeline for one checkpoint, and put_state(key, nil)
-- replicating as a deletion.
local synaptic = require "synaptic"
local cjson = require "cjson"
local helpers = require "helpers"
local C = require "cli_run"

local run, assert_fails = C.run, C.assert_fails

local function truncate(file, by)
  local d = helpers.read_file(file)
  helpers.write_file(file, d:sub(1, #d - by))
end

local function files(dir, pattern)
  local t = {}
  for _, n in ipairs(helpers.listdir(dir)) do
    if n:match(pattern) then t[#t + 1] = n end
  end
  table.sort(t)
  return t
end

describe("small defects", function()
  teardown(function() helpers.cleanup() end)

  it("get_weights: version 0 is absent; a fractional version raises naming get_weights", function()
    local s <close> = assert(synaptic.open(helpers.tmpdir("d76") .. "/db"))
    s:put_weights("e", 1, { 1, 2 }, {})
    assert.is_nil(s:get_weights("e", 1, 0))
    assert.same({ 1, 2 }, s:get_weights("e", 1, 1):totable())
    local ok, err = pcall(s.get_weights, s, "e", 1, 1.5)
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'get_weights' %(version must be an integer, got a fraction%)", err)
    ok, err = pcall(s.get_weights, s, "e", 1, "2")
    assert.matches("bad argument #3 to 'get_weights' %(version must be an integer, got string%)", err)
    ok, err = pcall(s.get_weights, s, "e", 1, -1)
    assert.matches("bad argument #3 to 'get_weights' %(version must not be negative%)", err)
  end)

  it("a table file too short for an sstable is named apart from the message", function()
    local dir = helpers.tmpdir("d76") .. "/db"
    do
      local s <close> = assert(synaptic.open(dir))
      s:put_state("k", "v")
      assert(s:compact())
    end
    local sst = files(dir, "%.sst$")[1]
    helpers.write_file(dir .. "/" .. sst, "0123456789")
    local s, err = synaptic.open(dir)
    assert.is_nil(s)
    assert.matches("to be an sstable: " .. (dir .. "/" .. sst):gsub("%p", "%%%0"), err)
  end)

  describe("a blob file cut short by 10 bytes", function()
    local dir, blob

    setup(function()
      dir = helpers.tmpdir("d76blob") .. "/db"
      local s <close> = assert(synaptic.open(dir, { blob_files = true }))
      for layer = 1, 5 do s:put_weights("e", layer, helpers.weights(3000, layer), {}) end
      assert(s:compact())
      s:close()
      blob = files(dir, "%.blob$")[1]
      truncate(dir .. "/" .. blob, 10)
    end)

    it("verify names the stretch once, then each lost record with the file", function()
      local code, out, err = run("verify", dir, "--json")
      assert.equal(1, code, err)
      local r = cjson.decode(out)
      local stretches, lost = 0, {}
      for _, p in ipairs(r.problems) do
        if p.where == "neural_weights" then
          stretches = stretches + 1
          assert.matches("^records between the start and the end are unreadable: Corruption: ", p.error)
        else
          lost[#lost + 1] = p.where:match("^neural_weights/e/layer (%d)/%x+@%d+$")
          assert.matches("^lost: its value is in " .. blob:gsub("%p", "%%%0") .. ", which RocksDB cannot read %(", p.error)
        end
      end
      assert.equal(1, stretches)
      assert.same({ "1", "2", "3", "4", "5" }, lost)
    end)

    it("salvage recovers every record and exits 0, as it says", function()
      local out_dir = helpers.tmpdir("d76salv") .. "/out"
      local code, out, err = run("salvage", dir, out_dir)
      assert.equal(0, code, err)
      assert.matches("\n0 records lost: every record of the 1 unreadable stretch was recovered\n$", out)
      local n = 0
      for l in out:gmatch("unreadable: [^\n]+") do n = n + 1; assert.is_string(l) end
      assert.equal(1, n)
      local s <close> = assert(synaptic.open(out_dir, { read_only = true }))
      for layer = 1, 5 do
        assert.equal(helpers.f32(helpers.weights(3000, layer)[7]), s:get_weights("e", layer)[7])
      end
    end)
  end)

  it("import into an expert with no config keeps the stored shapes unless --force", function()
    local root = helpers.tmpdir("d76imp")
    local db = root .. "/db"
    do
      local s <close> = assert(synaptic.open(db))
      s:put_weights("noconf", 1, helpers.weights(6, 1), helpers.weights(2, 2), { shape = { 2, 3 } })
      s:put_weights("other", 1, helpers.weights(70, 3), helpers.weights(10, 4), { shape = { 10, 7 } })
    end
    assert.equal(0, (run("export", db, "other", root .. "/other.st")))
    assert_fails(1, "^synaptic: layer 1 %(layer1%): weights %[10, 7%] and 10 biases differ from the stored "
                 .. "layer's %[2, 3%] and 2; 'noconf' has no config to check against: use %-%-force",
                 run("import", db, "noconf", root .. "/other.st"))
    local s = assert(synaptic.open(db, { read_only = true }))
    assert.equal(6, #s:get_weights("noconf", 1))
    s:close()
    -- matching shapes import; --force replaces
    assert.equal(0, (run("import", db, "other", root .. "/other.st")))
    local code, out = run("import", db, "noconf", root .. "/other.st", "--force")
    assert.equal(0, code)
    assert.matches("layer 1 v2", out)
    s = assert(synaptic.open(db, { read_only = true }))
    assert.same({ 10, 7 }, select(3, s:get_weights("noconf", 1)).shape)
    s:close()
  end)

  it("put_state(key, nil) replicates as a deletion, either way", function()
    local sim = require "sim"
    local net = sim.new { n = 2, dir = helpers.tmpdir("d76sim"), degree = 0 }
    finally(function() net:close() end)
    local a, b = net.nodes[1].store, net.nodes[2].store
    a:put_state("table", { x = 1 })      -- a table value: the old code looked for hlc/origin in it
    a:put_state("plain", "v")
    assert.truthy(net:run_until_agreed(200))
    assert.same({ x = 1 }, b:get_state("table"))
    assert.equal("v", b:get_state("plain"))
    a:put_state("table", nil)            -- deleted where it was written
    b:put_state("plain", nil)            -- deleted on the other node
    assert.truthy(net:run_until_agreed(200))
    assert.is_nil(a:get_state("table"))
    assert.is_nil(b:get_state("table"))
    assert.is_nil(a:get_state("plain"))
    assert.is_nil(b:get_state("plain"))
    assert.same({}, a:state_keys())
    assert.same({}, b:state_keys())
  end)

  it("the report's timeline for one checkpoint spans an hour either side", function()
    local report = require "synaptic.report"
    local s <close> = assert(synaptic.open(helpers.tmpdir("d76rep") .. "/db"))
    local id = assert(s:create_checkpoint { system_version = "1" })
    local t = s:get_checkpoint(id).created_at
    local html = assert(report.build(s))
    local svg = html:match('<svg class="timeline".-</svg>')
    local ticks = {}
    for label in svg:gmatch('<text class="tick"[^>]*>([^<]*)</text>') do ticks[#ticks + 1] = label end
    assert.equal(5, #ticks)
    assert.equal(os.date("!%m-%d %H:%M", math.floor(t - 3600)), ticks[1])
    assert.equal(os.date("!%m-%d %H:%M", math.floor(t + 3600)), ticks[5])
  end)

  describe("the LuaRocks build", function()
    local function read(path) return assert(helpers.read_file(path)) end

    it("the README's command is the one make rockcheck runs, from a source that is not local", function()
      local flags = read("Makefile"):match("\nROCK_FLAGS%s*=%s*([^\n]+)")
      assert.equal("--lua-version $(LUA_VERSION) make --deps-mode none", flags)
      assert.truthy(read("README.md"):find(
        "\nluarocks --lua-version 5.4 make --deps-mode none --local rockspec/synaptic-scm-1.rockspec\n", 1, true))
      local url = read("rockspec/synaptic-scm-1.rockspec"):match('source%s*=%s*{%s*url%s*=%s*"([^"]+)"')
      assert.matches("^git%+https://", url)
      assert.matches("^luarocks$", read("Makefile"):match("DEB_PACKAGES %?=[^\n]*\n[^\n]*\n[^\n]*(luarocks)"))
    end)

    it("bin/synaptic finds its modules from inside a LuaRocks tree", function()
      local tree = helpers.tmpdir("d76tree")
      local bin = tree .. "/lib/luarocks/rocks-5.4/synaptic/scm-1/bin"
      assert(os.execute(("mkdir -p %s %s/share/lua/5.4 %s/lib/lua/5.4/synaptic && cp bin/synaptic %s/ && "
                         .. "cp -r lua/synaptic %s/share/lua/5.4/ && cp build/synaptic/core.so %s/lib/lua/5.4/synaptic/")
                        :format(bin, tree, tree, bin, tree, tree)))
      local p = io.popen(("env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 lua5.4 %s/synaptic --version 2>&1")
                         :format(bin))
      local out = p:read("a")
      p:close()
      assert.equal("synaptic " .. synaptic.version .. "\n", out)
    end)
  end)

  describe("sync stats", function()
    it("state and metric writes have their own counters", function()
      local sim = require "sim"
      local net = sim.new { n = 2, dir = helpers.tmpdir("d76cnt"), degree = 0 }
      finally(function() net:close() end)
      local a = net.nodes[1].store
      a:put_state("k", 1)
      a:record_metric("loss", 0.5, 10)
      a:record_metric("loss", 0.25, 20)
      assert.truthy(net:run_until_agreed(200))
      local sa, sb = net.nodes[1].engine:stats(), net.nodes[2].engine:stats()
      assert.equal(1, sa.states_sent)
      assert.equal(2, sa.metrics_sent)
      assert.equal(1, sb.states_received)
      assert.equal(2, sb.metrics_received)
      assert.equal(0, sb.checkpoints_received)   -- they were counted here before
    end)

    it("rt:stats() carries the node's sync stats", function()
      local rt <close> = assert(synaptic.runtime(helpers.tmpdir("d76rt") .. "/db"))
      assert.is_nil(rt:stats().sync)
      assert(rt:enable_p2p_sync { node_id = "solo", listen = "tcp://127.0.0.1:0" })
      local st = rt:stats()
      assert.is_table(st.sync)
      assert.equal(0, st.sync.states_received)
      assert.same(rt:node():stats().weights_sent, st.sync.weights_sent)
      assert.matches("\nsync: weights 0 sent / 0 received, configs 0 / 0, checkpoints 0 / 0, state 0 / 0, "
                     .. "metrics 0 / 0, 0 conflicts, 0 rejected\n", tostring(st))
    end)
  end)
end)
