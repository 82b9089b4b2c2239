-- Backups and restores, integrity checks, compaction, statistics and the
-- version history limit.
local synaptic = require "synaptic"
local helpers = require "helpers"
local write_file, f32_bytes = helpers.write_file, helpers.f32_bytes

describe("maintenance", function()
  teardown(function()
    helpers.cleanup()
  end)

  describe("backups", function()
    local root, db, bk, store

    before_each(function()
      root = helpers.tmpdir("backup")
      db = root .. "/db"
      bk = root .. "/backups"
      store = assert(synaptic.open(db))
    end)

    after_each(function()
      if store then store:close() end
      store = nil
    end)

    it("restores the backed-up state, not later writes", function()
      local w1 = helpers.weights(3000, 1)
      store:put_weights("e", 0, w1, { 1, 2 })
      store:put_config({ expert_id = "e", domain = "d", parameter_count = 1,
                         learning_rate = 0.1, architecture = {} })
      store:put_state("phase", "before")
      store:record_metric("loss", 1.5, 10)
      local cp = store:create_checkpoint({ system_version = "b1" })
      -- not flushed yet: the backup must still hold it
      local id = store:backup(bk)
      assert.equal("integer", math.type(id))
      assert.is_true(id >= 1)

      store:put_weights("e", 0, helpers.weights(3000, 2))
      store:put_weights("later", 0, { 1 })
      store:put_state("phase", "after")
      store:put_state("only_after", true)
      store:record_metric("loss", 9.5, 20)
      store:create_checkpoint({ system_version = "b2" })

      local target = root .. "/restored"
      assert.is_true(synaptic.restore_backup(bk, target))
      local r = assert(synaptic.open(target))
      assert.same({ 1 }, r:weight_versions("e", 0))
      local w, b = r:get_weights("e", 0)
      assert.equal(f32_bytes(w1), w:tobytes())
      assert.same({ 1, 2 }, b:totable())
      assert.is_nil(r:get_weights("later", 0))
      assert.equal("before", r:get_state("phase"))
      assert.is_nil(r:get_state("only_after"))
      assert.same({ { timestamp = 10, value = 1.5 } }, helpers.points(r:metrics("loss")))
      assert.same({ cp }, r:list_checkpoints())
      assert.equal(0.1, r:get_config("e").learning_rate)
      assert.same({ "e" }, r:list_experts())
      local ok, report = r:verify()
      assert.is_true(ok, report and report.problems[1] and report.problems[1].error)
      r:close()

      -- the live store is untouched by all this
      assert.equal("after", store:get_state("phase"))
      assert.same({ 1, 2 }, store:weight_versions("e", 0))
    end)

    it("is incremental: later ids are larger, all are listed, any can be restored", function()
      store:put_state("n", 1)
      store:put_weights("e", 0, helpers.weights(20000, 1))
      local id1 = store:backup(bk)
      store:put_state("n", 2)
      store:put_weights("e", 0, helpers.weights(20000, 2))
      local id2 = store:backup(bk)
      store:put_state("n", 3)
      local id3 = store:backup(bk)
      assert.is_true(id2 > id1)
      assert.is_true(id3 > id2)

      local list = synaptic.list_backups(bk)
      assert.equal(3, #list)
      local now = os.time()
      for i, b in ipairs(list) do
        assert.equal(({ id1, id2, id3 })[i], b.id)
        assert.is_true(b.size > 0)
        assert.is_true(b.files > 0)
        assert.is_true(math.abs(b.timestamp - now) < 120)
      end
      -- the second backup holds both weight versions: it is not smaller than
      -- the first
      assert.is_true(list[2].size >= list[1].size)

      local t1 = root .. "/r1"
      assert.is_true(synaptic.restore_backup(bk, t1, id1))
      local r = assert(synaptic.open(t1))
      assert.equal(1, r:get_state("n"))
      assert.same({ 1 }, r:weight_versions("e", 0))
      r:close()

      local t2 = root .. "/r2"
      assert.is_true(synaptic.restore_backup(bk, t2, id2))
      r = assert(synaptic.open(t2))
      assert.equal(2, r:get_state("n"))
      assert.same({ 1, 2 }, r:weight_versions("e", 0))
      assert.equal(f32_bytes(helpers.weights(20000, 2)), r:get_weights("e", 0):tobytes())
      r:close()

      -- no id: the latest
      local t3 = root .. "/r3"
      assert.is_true(synaptic.restore_backup(bk, t3))
      r = assert(synaptic.open(t3))
      assert.equal(3, r:get_state("n"))
      r:close()
    end)

    it("reports missing or unusable backup locations as nil and a message", function()
      local list, msg = synaptic.list_backups(root .. "/no-such-dir")
      assert.is_nil(list)
      assert.matches("^no backups at '.*/no%-such%-dir': No such file or directory$", msg)

      local ok, msg2 = synaptic.restore_backup(root .. "/no-such-dir", root .. "/x")
      assert.is_nil(ok)
      assert.matches("^no backups at '.*/no%-such%-dir': No such file or directory$", msg2)

      store:put_state("a", 1)
      assert.is_number(store:backup(bk))
      local ok3, msg3 = synaptic.restore_backup(bk, root .. "/y", 999)
      assert.is_nil(ok3)
      assert.matches("^no backup 999 in '.*/backups'$", msg3)

      local file = root .. "/plainfile"
      write_file(file, "x")
      local id, msg4 = store:backup(file)
      assert.is_nil(id)
      assert.matches("^cannot open backups at '.*/plainfile': IO error: .*exists but is not a directory$", msg4)
    end)

    it("a directory without backups lists none", function()
      local empty = helpers.tmpdir("nobackups")
      local list = synaptic.list_backups(empty)
      assert.same({}, list)
    end)
  end)

  describe("verify, compact and statistics", function()
    local store

    before_each(function()
      store = assert(synaptic.open(helpers.tmpdir("maint"), { compression = "shuffle" }))
    end)

    after_each(function()
      if store then store:close() end
      store = nil
    end)

    it("verify on a healthy store is true with a record count", function()
      local ok, report = store:verify()
      assert.is_true(ok)
      assert.same({}, report.problems)
      store:put_weights("e", 0, helpers.weights(500, 1))
      store:put_weights("e", 1, helpers.weights(500, 2), { 1 })
      store:put_config({ expert_id = "e", domain = "d", parameter_count = 1,
                         learning_rate = 0.1, architecture = {} })
      store:put_state("s", 1)
      store:record_metric("m", 1, 1)
      store:create_checkpoint({})
      ok, report = store:verify()
      assert.is_true(ok)
      assert.is_table(report)
      assert.equal("integer", math.type(report.records))
      -- 2 weights, 1 config, 1 state, 1 metric, 1 checkpoint at least
      assert.is_true(report.records >= 6)
      assert.same({}, report.problems)
    end)

    it("compact keeps every record", function()
      local ws = {}
      for i = 1, 6 do
        ws[i] = helpers.weights(2000, i)
        store:put_weights("e" .. (i % 2), i, ws[i])
      end
      store:put_state("s", { x = 1 })
      store:put_weights("e1", 1, { 5 })   -- e1 layer 1 gets a second version
      assert.is_true(store:compact())
      for i = 1, 6 do
        assert.equal(f32_bytes(ws[i]), store:get_weights("e" .. (i % 2), i, 1):tobytes())
      end
      assert.same({ 1, 2 }, store:weight_versions("e1", 1))
      assert.same({ x = 1 }, store:get_state("s"))
      assert.is_true((store:verify()))
      assert.is_true(store:compact())   -- twice is fine
    end)

    it("storage_stats is consistent with what was written", function()
      local raw, stored, records = 0, 0, 0
      for i = 1, 4 do
        local w = helpers.weights(20000, i)
        store:put_weights("e", i, w, helpers.weights(100, i + 10))
      end
      store:put_weights("e", 1, helpers.weights(20000, 99), helpers.weights(100, 98))
      for _, layer in ipairs({ 1, 2, 3, 4 }) do
        for _, v in ipairs(store:weight_versions("e", layer)) do
          local _, _, info = store:get_weights("e", layer, v)
          raw = raw + info.raw_bytes
          stored = stored + info.stored_bytes
          records = records + 1
          assert.equal("shuffle", info.codec)
          assert.equal(4 * 20100, info.raw_bytes)
          assert.is_true(info.stored_bytes < info.raw_bytes)
        end
      end
      store:create_checkpoint({})
      store:create_checkpoint({})
      local st = store:storage_stats()
      assert.equal(5, st.weight_records)
      assert.equal(records, st.weight_records)
      assert.equal(2, st.checkpoint_count)
      assert.equal(raw, st.raw_bytes)
      assert.equal(stored, st.stored_bytes)
      assert.is_true(st.raw_bytes > st.stored_bytes, "shuffle did not shrink Gaussian weights")
      assert.is_true(st.compression_ratio < 1)
      assert.is_true(math.abs(st.compression_ratio - st.stored_bytes / st.raw_bytes) < 1e-9)
      assert.is_true(st.total_bytes > 0)
      assert.is_true(st.file_count > 0)
      assert.equal("integer", math.type(st.total_bytes))
      assert.is_string(st.human_size)
      assert.matches("^%d+%.?%d* [KMGT]?i?B$", st.human_size)
    end)

    it("storage_stats of an empty store", function()
      local st = store:storage_stats()
      assert.equal(0, st.weight_records)
      assert.equal(0, st.checkpoint_count)
      assert.equal(0, st.raw_bytes)
      assert.equal(0, st.stored_bytes)
      assert.is_number(st.compression_ratio)
      assert.is_string(st.human_size)
    end)

    it("size_info agrees with storage_stats and grows with data", function()
      local b0, f0 = store:size_info()
      assert.equal("integer", math.type(b0))
      assert.equal("integer", math.type(f0))
      assert.is_true(b0 > 0 and f0 > 0)
      for i = 1, 4 do store:put_weights("e", i, helpers.weights(100000, i)) end
      store:compact()
      local b1, f1 = store:size_info()
      assert.is_true(b1 > b0 + 4 * 100000)   -- Gaussian floats do not shrink below ~3 bytes each
      local st = store:storage_stats()
      -- the same directory walk; only RocksDB's own LOG may move in between
      assert.is_true(math.abs(st.total_bytes - b1) <= 65536, st.total_bytes .. " vs " .. b1)
      assert.is_true(math.abs(st.file_count - f1) <= 2, st.file_count .. " vs " .. f1)
    end)

    it("rocksdb_stats() is RocksDB's text naming the column families", function()
      store:put_weights("e", 0, { 1 })
      local text = store:rocksdb_stats()
      assert.is_string(text)
      for _, cf in ipairs({ "neural_weights", "expert_config", "system_state", "checkpoints", "metrics" }) do
        assert.truthy(text:find(cf, 1, true), cf .. " missing from rocksdb_stats()")
      end
    end)
  end)

  describe("max_weight_versions", function()
    local path, store

    before_each(function()
      path = helpers.tmpdir("maxver") .. "/db"
      store = assert(synaptic.open(path, { max_weight_versions = 3 }))
    end)

    after_each(function()
      if store then store:close() end
      store = nil
    end)

    it("keeps the newest N versions of each layer", function()
      for v = 1, 10 do assert.equal(v, store:put_weights("e", 0, { v })) end
      for v = 1, 2 do store:put_weights("e", 1, { v }) end
      assert.same({ 8, 9, 10 }, store:weight_versions("e", 0))
      assert.same({ 1, 2 }, store:weight_versions("e", 1))
      assert.is_nil(store:get_weights("e", 0, 7))
      assert.same({ 8 }, store:get_weights("e", 0, 8):totable())
      assert.same({ 10 }, store:get_weights("e", 0):totable())
      assert.equal(5, store:storage_stats().weight_records)
    end)

    it("never deletes a pinned version; deleting the checkpoint lets it go", function()
      for v = 1, 5 do store:put_weights("e", 0, { v, v }) end
      store:put_weights("other", 0, { 0.5 })
      local cp = store:create_checkpoint({ system_version = "pin5" })
      for v = 6, 12 do store:put_weights("e", 0, { v, v }) end
      assert.same({ 5, 10, 11, 12 }, store:weight_versions("e", 0))
      assert.same({ 5, 5 }, store:get_weights("e", 0, 5):totable())
      assert.is_true((store:verify()))

      -- restoring the pinned version makes it current as a new version
      assert.is_true(store:restore_checkpoint(cp))
      local w, _, info = store:get_weights("e", 0)
      assert.equal(13, info.version)
      assert.same({ 5, 5 }, w:totable())
      assert.same({ 5, 11, 12, 13 }, store:weight_versions("e", 0))

      -- survives a reopen
      store:close()
      store = assert(synaptic.open(path, { max_weight_versions = 3 }))
      assert.same({ 5, 11, 12, 13 }, store:weight_versions("e", 0))

      assert.is_true(store:delete_checkpoint(cp))
      assert.same({ 11, 12, 13 }, store:weight_versions("e", 0))
      assert.is_nil(store:get_weights("e", 0, 5))
      -- the restore wrote "other" again too; nothing trims below the limit
      assert.same({ 1, 2 }, store:weight_versions("other", 0))
      local ok, report = store:verify()
      assert.is_true(ok, report and report.problems[1] and report.problems[1].error)
    end)

    it("a version pinned by two checkpoints stays until both are gone", function()
      for v = 1, 2 do store:put_weights("e", 0, { v }) end
      local cp1 = store:create_checkpoint({})
      local cp2 = store:create_checkpoint({})
      for v = 3, 8 do store:put_weights("e", 0, { v }) end
      assert.same({ 2, 6, 7, 8 }, store:weight_versions("e", 0))
      store:delete_checkpoint(cp1)
      assert.same({ 2, 6, 7, 8 }, store:weight_versions("e", 0))
      store:delete_checkpoint(cp2)
      assert.same({ 6, 7, 8 }, store:weight_versions("e", 0))
    end)

    it("a checkpoint deleted inside a batch is collected by a later write", function()
      for v = 1, 2 do store:put_weights("e", 0, { v }) end
      local cp = store:create_checkpoint({})
      for v = 3, 6 do store:put_weights("e", 0, { v }) end
      assert.same({ 2, 4, 5, 6 }, store:weight_versions("e", 0))
      store:batch(function(b) b:delete_checkpoint(cp) end)
      assert.is_nil(store:get_checkpoint(cp))
      store:put_weights("e", 0, { 7 })
      assert.same({ 5, 6, 7 }, store:weight_versions("e", 0))
    end)

    it("0 keeps every version", function()
      store:close()
      store = assert(synaptic.open(path, { max_weight_versions = 0 }))
      for v = 1, 12 do store:put_weights("e", 0, { v }) end
      assert.equal(12, #store:weight_versions("e", 0))
    end)
  end)
end)
