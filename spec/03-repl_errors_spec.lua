-- What a person at the REPL meets: floats that iterate like sequences,
-- store:stats() as a printable table, errors that point at their own line
-- and never name the internal synaptic.core module.
local synaptic = require "synaptic"
local helpers = require "helpers"

-- An error raised by f, positioned at this file.
local HERE = "03%-repl_errors_spec%.lua:%d+: "

local function error_of(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("the REPL", function()
  teardown(function()
    helpers.cleanup()
  end)

  describe("floats", function()
    it("iterate with ipairs, every value once", function()
      local a = synaptic.floats { 1.5, -2, 3 }
      local seen = {}
      for i, x in ipairs(a) do seen[i] = x end
      assert.same({ 1.5, -2, 3 }, seen)
      for _ in ipairs(synaptic.floats(0)) do error("an empty array has no values") end
    end)

    it("read nil one past the end only; writes stay bounds-checked", function()
      local a = synaptic.floats(2)
      assert.is_nil(a[3])
      assert.has_error(function() return a[4] end, "floats index 4 out of range (1..2)")
      assert.has_error(function() return a[0] end, "floats index 0 out of range (1..2)")
      assert.has_error(function() a[3] = 1 end, "floats index 3 out of range (1..2)")
      assert.equal(2, #a)
    end)
  end)

  describe("store:stats()", function()
    local store

    setup(function()
      store = assert(synaptic.open(helpers.tmpdir("repl") .. "/db"))
      store:put_weights("e", 1, helpers.weights(64, 1), { 0 })
      store:record_metric("loss", 1)
      store:create_checkpoint {}
    end)

    teardown(function()
      if store then store:close() end
    end)

    it("is a table with storage_stats' fields and RocksDB's per column family numbers", function()
      local st, ss = store:stats(), store:storage_stats()
      assert.is_table(st)
      for k, v in pairs(ss) do
        if k ~= "total_bytes" and k ~= "file_count" and k ~= "human_size" then   -- files come and go
          assert.equal(v, st[k], k)
        end
      end
      assert.is_number(st.total_bytes)
      assert.equal(store:path(), st.path)
      local names = {}
      for i, cf in ipairs(st.column_families) do
        names[i] = cf.name
        for _, k in ipairs { "keys", "sst_bytes", "blob_bytes", "memtable_bytes" } do
          assert.equal("integer", math.type(cf[k]), cf.name .. "." .. k)
        end
      end
      assert.same({ "default", "neural_weights", "expert_config", "system_state", "checkpoints", "metrics" },
                  names)
      assert.is_true(st.keys >= 3)
      assert.equal("integer", math.type(st.block_cache_bytes))
    end)

    it("prints a readable summary", function()
      local text = tostring(store:stats())
      assert.matches("^synaptic.store stats %(", text)
      assert.matches("weights%s+1 records", text)
      assert.matches("checkpoints%s+1", text)
      for _, cf in ipairs { "neural_weights", "metrics", "system_state" } do
        assert.truthy(text:find("\n  " .. cf, 1, true), cf)
      end
      assert.is_true(select(2, text:gsub("\n", "")) < 20, "a summary, not a dump")
    end)

    it("prints even after the table was changed", function()
      local st = store:stats()
      st.column_families, st.path, st.raw_bytes = nil, nil, "x"
      assert.is_string(tostring(st))
    end)

    it("rocksdb_stats() keeps the RocksDB text", function()
      local text = store:rocksdb_stats()
      assert.is_string(text)
      assert.truthy(text:find("neural_weights", 1, true))
    end)
  end)

  describe("errors point at the caller's line", function()
    it("synaptic.open options", function()
      assert.matches(HERE .. "open: unknown option foo",
                     error_of(function() synaptic.open("/nonexistent/x", { foo = 1 }) end))
      assert.matches(HERE .. "open: option cache_mb must be a number",
                     error_of(function() synaptic.open("/nonexistent/x", { cache_mb = "a" }) end))
      assert.matches(HERE .. "bad argument #1 to '[%w.]*open' %(string expected, got number%)",
                     error_of(function() synaptic.open(1) end))
    end)

    it("p2p configs, given directly or to an engine, a node or a runtime", function()
      assert.matches(HERE .. "p2p_config: unknown field foo",
                     error_of(function() synaptic.p2p_config { foo = 1 } end))
      assert.matches(HERE .. "p2p_config: curve.public must be",
                     error_of(function() synaptic.p2p_config { curve = { public = 1 } } end))
      local dir = helpers.tmpdir("repl-p2p")
      local store <close> = assert(synaptic.open(dir .. "/db"))
      assert.matches(HERE .. "p2p_config: unknown field foo",
                     error_of(function() synaptic.sync_engine(store, { foo = 1 }) end))
      assert.matches(HERE .. "bad argument #2 to 'sync_engine'",
                     error_of(function() synaptic.sync_engine(store, 5) end))
      assert.matches(HERE .. "p2p_config: max_peers must be",
                     error_of(function() synaptic.node(store, { max_peers = 0 }) end))
      local rt <close> = assert(synaptic.runtime(dir .. "/rt", { seed = 1 }))
      assert.matches(HERE .. "p2p_config: unknown field bogus",
                     error_of(function() rt:enable_p2p_sync { bogus = 1 } end))
    end)

    it("runtime config", function()
      local dir = helpers.tmpdir("repl-rt")
      assert.matches(HERE .. "runtime: unknown config field 'foo'",
                     error_of(function() synaptic.runtime(dir .. "/rt", { foo = 1 }) end))
      assert.matches(HERE .. "runtime: seed must be an integer",
                     error_of(function() synaptic.runtime(dir .. "/rt", { seed = 1.5 }) end))
    end)

    it("a bug inside a config check is not disguised as a config error", function()
      -- a resolver is stored, not called, so any function passes; a table
      -- whose __index raises is a bug of the caller's own making
      local weird = setmetatable({}, { __index = function() error("boom", 0) end })
      local err = error_of(function() synaptic.p2p_config(weird) end)
      assert.matches("boom", err)
    end)
  end)

  describe("the internal module name", function()
    it("never appears in an argument error", function()
      local calls = {
        function() synaptic.floats(-1) end,
        function() synaptic.floats(true) end,
        function() synaptic.floats("abc") end,
        function() synaptic.compress("nope", "x") end,
        function() synaptic.decompress("none", "x", -1) end,
        function() synaptic.list_backups(nil) end,
        function() synaptic.restore_backup(1) end,
      }
      for i, f in ipairs(calls) do
        -- called directly and through pcall (where Lua finds the name by
        -- searching the loaded modules)
        assert.is_nil(error_of(f):find("synaptic.core", 1, true), i)
        local ok, err = pcall(f)
        assert.is_false(ok)
        assert.is_nil(tostring(err):find("synaptic.core", 1, true), i)
      end
      for _, f in ipairs { synaptic.floats, synaptic.compress, synaptic.decompress } do
        local _, err = pcall(f, -1)
        assert.is_nil(tostring(err):find("synaptic.core", 1, true), tostring(err))
      end
    end)

    it("the core still reaches every function the front end re-exports", function()
      local core = require "synaptic.core"
      for _, k in ipairs { "open", "floats", "compress", "decompress", "codecs", "uuid", "now",
                           "list_backups", "restore_backup" } do
        assert.equal(synaptic[k], core[k], k)
      end
    end)
  end)
end)
