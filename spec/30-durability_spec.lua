-- What is written stays written: across close/reopen with every codec,
-- across a SIGKILL in the middle of writing, and in the face of damaged
-- files on disk (a clear error, never wrong data).
local synaptic = require "synaptic"
local helpers = require "helpers"
local read_file, write_file, listdir, f32_bytes = helpers.read_file, helpers.write_file, helpers.listdir, helpers.f32_bytes
local writer = require "crash_writer"

-- What bfloat16 keeps of a float32: round to nearest, ties to even, on the
-- top 16 bits; the low 16 bits come back zero.
local function bf16_bytes(t)
  local parts = {}
  for i = 1, #t do
    local bits = string.unpack("<I4", string.pack("<f", t[i]))
    local lsb = (bits >> 16) & 1
    local r = ((bits + 0x7FFF + lsb) & 0xFFFF0000) & 0xFFFFFFFF
    parts[i] = string.pack("<I4", r)
  end
  return table.concat(parts)
end

local function from_bits(bits)
  return (string.unpack("<f", string.pack("<I4", bits)))
end

local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function config(id, lr)
  return {
    expert_id = id, domain = "d-" .. id, parameter_count = 1000,
    learning_rate = lr, architecture = { layers = { 8, 4 }, id = id },
  }
end

-- Values that exercise bf16 rounding: ties both ways, the carry into the
-- exponent, negative zero, subnormals, plus ordinary Gaussian weights.
local function tricky_values()
  local t = {
    from_bits(0x3F808000),   -- tie, even below: rounds down
    from_bits(0x3F818000),   -- tie, odd below: rounds up
    from_bits(0x3F808001),   -- just above the tie: up
    from_bits(0x3F807FFF),   -- just below the tie: down
    from_bits(0x3FFFFFFF),   -- carries into the exponent
    from_bits(0xBF818000),   -- negative tie, odd: away from zero
    from_bits(0x80000000),   -- -0.0
    from_bits(0x00000001),   -- smallest subnormal
    from_bits(0x007FFFFF),   -- largest subnormal
    1.0, -1.0, 0.1, -0.3, 1e-30, 3e30, 65504.0, 0.0,
  }
  for _, x in ipairs(helpers.weights(300, 77)) do t[#t + 1] = x end
  return t
end

describe("durability", function()
  teardown(function()
    helpers.cleanup()
  end)

  describe("reopen", function()
    local codecs = { "none", "gzip", "shuffle", "bf16", true, false }

    for _, codec in ipairs(codecs) do
      it("finds every record as it was (compression = " .. tostring(codec) .. ")", function()
        local path = helpers.tmpdir("reopen") .. "/db"
        local lossy = codec == "bf16"
        local expect = lossy and bf16_bytes or f32_bytes

        local data = {}
        local s = assert(synaptic.open(path, { compression = codec }))
        for layer = 0, 2 do
          for v = 1, 3 do
            local w = helpers.weights(1000 + 700 * layer, layer * 10 + v)
            local b = helpers.weights(16, 100 + layer * 10 + v)
            if layer == 0 and v == 1 then
              w = tricky_values()
            end
            assert.equal(v, s:put_weights("expert-a", layer, w, b, { shape = { #w } }))
            data[layer .. "/" .. v] = { w = w, b = b }
          end
        end
        local big = helpers.weights(100000, 5)   -- 400 KB: a blob of its own
        s:put_weights("expert-b", 7, big)
        s:put_config(config("expert-a", 0.01))
        s:put_config(config("expert-c", 0.02))
        s:put_state("int", 42)
        s:put_state("float", 42.0)
        s:put_state("nested", { a = { 1, 2, { b = "c" } }, flag = false })
        for t = 1, 5 do s:record_metric("loss", 1 / t, t) end
        s:record_metric("acc", 0.9, 3)
        local cp1 = s:create_checkpoint({ system_version = "one", metadata = { k = 1 } })
        s:put_weights("expert-a", 0, { 9, 9, 9 })
        local cp2 = s:create_checkpoint({ system_version = "two" })
        local cfg_before = s:get_config("expert-a")
        local cp1_before = s:get_checkpoint(cp1)
        s:close()

        -- reopen with another codec setting: records carry their own codec
        s = assert(synaptic.open(path, { compression = codec == "gzip" and "none" or "gzip" }))
        for layer = 0, 2 do
          if layer > 0 then assert.same({ 1, 2, 3 }, s:weight_versions("expert-a", layer)) end
          for v = 1, 3 do
            local d = data[layer .. "/" .. v]
            local w, b, info = s:get_weights("expert-a", layer, v)
            assert.is_not_nil(w)
            assert.equal(expect(d.w), w:tobytes())
            assert.equal(expect(d.b), b:tobytes())
            assert.equal(v, info.version)
            assert.equal(layer, info.layer)
            assert.equal("expert-a", info.expert_id)
            assert.same({ #d.w }, info.shape)
            assert.equal(4 * (#d.w + #d.b), info.raw_bytes)
            assert.is_true(info.stored_bytes > 0)
            if type(codec) == "string" then assert.equal(codec, info.codec) end
            if codec == false then assert.equal("none", info.codec) end
            if codec == true then assert.not_equal("bf16", info.codec) end
          end
        end
        assert.same({ 1, 2, 3, 4 }, s:weight_versions("expert-a", 0))
        assert.same({ 9, 9, 9 }, s:get_weights("expert-a", 0):totable())
        assert.equal(expect(big), s:get_weights("expert-b", 7):tobytes())
        assert.same({ "expert-a", "expert-b", "expert-c" }, s:list_experts())
        assert.same(cfg_before, s:get_config("expert-a"))
        assert.equal(0.02, s:get_config("expert-c").learning_rate)
        assert.equal("integer", math.type(s:get_state("int")))
        assert.equal("float", math.type(s:get_state("float")))
        assert.same({ a = { 1, 2, { b = "c" } }, flag = false }, s:get_state("nested"))
        local m = s:metrics("loss")
        assert.equal(5, #m)
        for t = 1, 5 do
          assert.equal(t, m[t].timestamp)
          assert.equal(1 / t, m[t].value)
        end
        assert.same({ { timestamp = 3, value = 0.9 } }, helpers.points(s:metrics("acc")))
        assert.same({ cp1, cp2 }, s:list_checkpoints())
        assert.same(cp1_before, s:get_checkpoint(cp1))
        -- the pins of the first checkpoint still resolve after reopening
        assert.is_true(s:restore_checkpoint(cp1))
        local w = s:get_weights("expert-a", 0)
        assert.equal(expect(data["0/3"].w), w:tobytes())
        local ok, report = s:verify()
        assert.is_true(ok, report and report.problems[1] and report.problems[1].error)
        assert.is_true(report.records > 0)
        s:close()
      end)
    end

    it("bf16 keeps exactly the round-to-nearest-even bfloat16 of each value", function()
      local s = assert(synaptic.open(helpers.tmpdir("bf16"), { compression = "bf16" }))
      local t = tricky_values()
      s:put_weights("e", 0, t)
      local w = s:get_weights("e", 0)
      local got, want = w:tobytes(), bf16_bytes(t)
      for i = 1, #t do
        local g = string.unpack("<I4", got, 4 * i - 3)
        local x = string.unpack("<I4", want, 4 * i - 3)
        assert(g == x, string.format("value %d (%.9g): got 0x%08x, want 0x%08x", i, t[i], g, x))
      end
      -- and a second write of the already-rounded values is exact
      s:put_weights("e", 0, w)
      assert.equal(want, s:get_weights("e", 0):tobytes())
      s:close()
    end)

    it("survives sync_writes and blob_files = false the same way", function()
      local path = helpers.tmpdir("sync") .. "/db"
      local s = assert(synaptic.open(path, { sync_writes = true, blob_files = false }))
      local w = helpers.weights(5000, 9)
      s:put_weights("e", 1, w, { 1, 2 })
      s:put_state("k", "v")
      s:close()
      s = assert(synaptic.open(path, { read_only = true }))
      local got, b = s:get_weights("e", 1)
      assert.equal(f32_bytes(w), got:tobytes())
      assert.same({ 1, 2 }, b:totable())
      assert.equal("v", s:get_state("k"))
      s:close()
    end)

    it("a store dropped without close (garbage collected) reopens intact", function()
      local path = helpers.tmpdir("gc") .. "/db"
      do
        local s = assert(synaptic.open(path))
        s:put_weights("e", 0, { 1, 2, 3 })
        s:put_state("k", 1)
        s = nil   -- luacheck: ignore
      end
      collectgarbage()
      collectgarbage()
      local s = assert(synaptic.open(path))
      assert.same({ 1, 2, 3 }, s:get_weights("e", 0):totable())
      assert.equal(1, s:get_state("k"))
      s:close()
    end)
  end)

  describe("crash", function()
    -- Runs the writer child on db until it has acknowledged `want` writes,
    -- then SIGKILLs it. Returns every ack it printed (before or after the
    -- kill: all of them were acknowledged).
    local function run_writer(db, start, want, sync)
      local errfile = os.tmpname()
      local cmd = "LUA_PATH=" .. shq(package.path) .. " LUA_CPATH=" .. shq(package.cpath) ..
        " exec lua5.4 spec/support/crash_writer.lua " .. shq(db) .. " " .. start ..
        (sync and " sync" or "") .. " 2>" .. shq(errfile)
      local p = assert(io.popen(cmd, "r"))
      local first = p:read("l")
      local pid = tonumber(first)
      if not pid then
        p:close()
        local err = read_file(errfile)
        os.remove(errfile)
        error("crash writer did not start: " .. tostring(first) .. " " .. err)
      end
      local acks = {}
      local function take(line)
        local layer, version, seq = line:match("^ack (%d+) (%d+) (%d+)$")
        if layer then
          acks[#acks + 1] = { layer = tonumber(layer), version = tonumber(version), seq = tonumber(seq) }
        end
      end
      while #acks < want do
        local line = p:read("l")
        if not line then break end
        take(line)
      end
      local killed = os.execute("kill -9 " .. pid .. " 2>/dev/null")
      for line in p:lines() do take(line) end
      p:close()
      local err = read_file(errfile)
      os.remove(errfile)
      assert(#acks >= want, "writer stopped early after " .. #acks .. " acks: " .. err)
      assert(killed, "could not kill the writer (pid " .. pid .. ")")
      return acks
    end

    local function check_acks(s, acks)
      for _, a in ipairs(acks) do
        local w, b, info = s:get_weights(writer.EXPERT, a.layer, a.version)
        assert(w, string.format("acknowledged write seq %d (layer %d v%d) is gone",
          a.seq, a.layer, a.version))
        assert(w:tobytes() == f32_bytes(writer.values(a.seq)),
          string.format("write seq %d (layer %d v%d) reads back different bytes", a.seq, a.layer, a.version))
        assert.equal(f32_bytes(writer.bias(a.seq)), b:tobytes())
        assert.equal(a.version, info.version)
      end
      -- versions of each layer are contiguous and reach the last ack
      local top = {}
      for _, a in ipairs(acks) do
        top[a.layer] = math.max(top[a.layer] or 0, a.version)
      end
      for layer, v in pairs(top) do
        local versions = s:weight_versions(writer.EXPERT, layer)
        for i, x in ipairs(versions) do assert.equal(i, x) end
        assert.is_true(#versions >= v)
      end
    end

    it("a SIGKILLed writer loses no acknowledged write, twice over", function()
      local db = helpers.tmpdir("crash") .. "/db"
      local acks1 = run_writer(db, 1, 150)
      local s = assert(synaptic.open(db))
      check_acks(s, acks1)
      local ok, report = s:verify()
      assert.is_true(ok, report and report.problems[1] and report.problems[1].error)
      s:close()

      -- recover, write more, crash again
      local acks2 = run_writer(db, 100000, 150)
      s = assert(synaptic.open(db))
      check_acks(s, acks1)
      check_acks(s, acks2)
      -- the second run carried on after the first run's versions
      local first = {}
      for _, a in ipairs(acks1) do first[a.layer] = math.max(first[a.layer] or 0, a.version) end
      for _, a in ipairs(acks2) do
        if first[a.layer] then assert.is_true(a.version > first[a.layer]) end
      end
      ok, report = s:verify()
      assert.is_true(ok, report and report.problems[1] and report.problems[1].error)
      s:close()
    end)

    it("a SIGKILLed writer with sync_writes loses nothing either", function()
      local db = helpers.tmpdir("crash-sync") .. "/db"
      local acks = run_writer(db, 1, 60, true)
      local s = assert(synaptic.open(db))
      check_acks(s, acks)
      assert.is_true((s:verify()))
      s:close()
    end)
  end)

  describe("damaged files", function()
    -- 2048 floats of codec "none" appear verbatim on disk; the needle is a
    -- run from the middle of them.
    local function victim_values()
      local t = {}
      for i = 1, 2048 do t[i] = 1 + i / 4096 end
      return t
    end

    local NEEDLE = f32_bytes({ table.unpack(victim_values(), 1000, 1016) })

    -- flips one byte in the middle of the needle in every .sst/.blob file
    -- holding it; returns how many files were changed
    local function corrupt(dir)
      local changed = 0
      for _, name in ipairs(listdir(dir)) do
        if name:match("%.sst$") or name:match("%.blob$") then
          local file = dir .. "/" .. name
          local data = read_file(file)
          local at = data:find(NEEDLE, 1, true)
          if at then
            local q = at + #NEEDLE // 2
            data = data:sub(1, q - 1) .. string.char(data:byte(q) ~ 0x20) .. data:sub(q + 1)
            write_file(file, data)
            changed = changed + 1
          end
        end
      end
      return changed
    end

    local function contains(dir, pattern)
      for _, name in ipairs(listdir(dir)) do
        if name:match(pattern) then
          local data = read_file(dir .. "/" .. name)
          if data:find(NEEDLE, 1, true) then return true end
        end
      end
      return false
    end

    for _, blob in ipairs({ true, false }) do
      local where = blob and "a blob file" or "an SST file"

      it("a flipped byte in " .. where .. " gives an error, never wrong data", function()
        local dir = helpers.tmpdir("corrupt")
        local s = assert(synaptic.open(dir, { compression = "none", blob_files = blob }))
        local before = helpers.weights(2048, 1)
        local after = helpers.weights(2048, 2)
        local small = helpers.weights(100, 3)
        s:put_weights("alpha", 0, before)
        s:put_weights("victim", 0, victim_values())
        s:put_weights("victim", 1, small)
        s:put_weights("zulu", 0, after)
        s:put_config(config("victim", 0.5))
        s:put_state("k", "v")
        s:compact()
        s:close()
        assert.is_false(contains(dir, "%.log$"), "the test needs the value out of the WAL")
        assert.is_true(corrupt(dir) >= 1, "the needle was not found on disk")

        s = assert(synaptic.open(dir))
        for _, version in ipairs({ 0, 1 }) do
          local w, msg = s:get_weights("victim", 0, version > 0 and version or nil)
          if w ~= nil then
            -- anything returned must be the truth
            assert.equal(f32_bytes(victim_values()), type(w) == "userdata" and w:tobytes() or w)
          end
          assert.is_nil(w, "corrupted record was returned")
          assert.is_string(msg)
          assert(msg:find("victim", 1, true) or msg:lower():find("checksum") or msg:find("Corruption"),
            "message names neither the record nor a checksum: " .. msg)
        end
        local ok, report = s:verify()
        assert.is_false(ok)
        assert.is_true(#report.problems >= 1)
        local named = false
        for _, p in ipairs(report.problems) do
          assert.is_string(p.where)
          assert.is_string(p.error)
          if p.where:find("neural_weights", 1, true) then named = true end
        end
        assert.is_true(named, "no problem listed under neural_weights")

        -- everything else is still readable, and exact
        assert.equal(f32_bytes(before), s:get_weights("alpha", 0, 1):tobytes())
        assert.equal(f32_bytes(after), s:get_weights("zulu", 0, 1):tobytes())
        assert.equal(0.5, s:get_config("victim").learning_rate)
        assert.equal("v", s:get_state("k"))
        s:close()
      end)

      it("a record next to a corrupted one in " .. where .. " still reads as latest", function()
        local dir = helpers.tmpdir("corrupt2")
        local s = assert(synaptic.open(dir, { compression = "none", blob_files = blob }))
        local before = helpers.weights(2048, 1)
        local after = helpers.weights(2048, 2)
        s:put_weights("alpha", 0, before)
        s:put_weights("victim", 0, victim_values())
        s:put_weights("zulu", 0, after)
        s:compact()
        s:close()
        assert.is_true(corrupt(dir) >= 1, "the needle was not found on disk")
        s = assert(synaptic.open(dir))
        -- version omitted: the latest one, the most common read of all
        local a, amsg = s:get_weights("alpha", 0)
        assert(a, "alpha (before the damage) unreadable: " .. tostring(amsg))
        assert.equal(f32_bytes(before), a:tobytes())
        local z, zmsg = s:get_weights("zulu", 0)
        assert(z, "zulu (after the damage) unreadable: " .. tostring(zmsg))
        assert.equal(f32_bytes(after), z:tobytes())
        assert.same({ 1 }, s:weight_versions("zulu", 0))
        s:close()
      end)
    end
  end)

  describe("damaged directory", function()
    local function make_store(dir)
      local s = assert(synaptic.open(dir))
      for i = 1, 30 do
        s:put_weights("e", i % 3, helpers.weights(64, i))
        s:put_state("k" .. i, i)
      end
      s:put_config(config("e", 0.1))
      s:compact()
      for i = 1, 5 do s:put_weights("late", 0, { i }) end
      s:close()
    end

    local function all_there(s)
      for layer = 0, 2 do assert.equal(10, #s:weight_versions("e", layer)) end
      assert.equal(30, s:get_state("k30"))
      assert.equal(0.1, s:get_config("e").learning_rate)
      assert.same({ 1, 2, 3, 4, 5 }, s:weight_versions("late", 0))
    end

    it("a directory that lost CURRENT is refused, and its files are kept", function()
      local dir = helpers.tmpdir("nocur") .. "/db"
      make_store(dir)
      assert(os.remove(dir .. "/CURRENT"))
      local names = listdir(dir)
      local sizes = {}
      for _, n in ipairs(names) do sizes[n] = #read_file(dir .. "/" .. n) end
      local s, msg = synaptic.open(dir)
      assert.is_nil(s)
      assert.matches("holds files but no CURRENT: not a store, or a damaged one", msg, 1, true)
      assert.same(names, listdir(dir))
      for _, n in ipairs(names) do
        if n ~= "LOG" then assert.equal(sizes[n], #read_file(dir .. "/" .. n), n) end
      end
      s, msg = synaptic.open(dir, { read_only = true })
      assert.is_nil(s)
      assert.matches("holds files but no CURRENT: not a store, or a damaged one", msg, 1, true)
    end)

    local function manifest(dir)
      for _, n in ipairs(listdir(dir)) do
        if n:match("^MANIFEST%-") then return dir .. "/" .. n end
      end
    end

    it("an emptied MANIFEST is refused", function()
      local dir = helpers.tmpdir("man0") .. "/db"
      make_store(dir)
      write_file(manifest(dir), "")
      local s, msg = synaptic.open(dir)
      assert.is_nil(s)
      assert.matches("^cannot open store at '.*/db': %d+ table or blob files %(%d+%.sst first%) are not "
        .. "listed in MANIFEST%-%d+, which was cut or damaged: .*salvage", msg)
    end)

    it("a MANIFEST with garbage in it is refused", function()
      local dir = helpers.tmpdir("mang") .. "/db"
      make_store(dir)
      local m = manifest(dir)
      local data = read_file(m)
      write_file(m, data:sub(1, 40) .. string.rep("\0", #data - 40))
      local s, msg = synaptic.open(dir)
      assert.is_nil(s)
      assert.matches("^cannot open store at '.*/db': %d+ table or blob files %(%d+%.sst first%) are not "
        .. "listed in MANIFEST%-%d+, which was cut or damaged: .*salvage", msg)
    end)

    -- RocksDB reads a MANIFEST cut at a record boundary as a clean end of
    -- file, then deletes the table files the shorter MANIFEST no longer
    -- lists. After a clean close such files cannot be a crashed flush's
    -- leftovers, so the open refuses them (spec 24 has the details).
    it("a MANIFEST cut in half is refused, or nothing is missing", function()
      local dir = helpers.tmpdir("manhalf") .. "/db"
      make_store(dir)
      local m = manifest(dir)
      local data = read_file(m)
      write_file(m, data:sub(1, #data // 2))
      local s, msg = synaptic.open(dir)
      if s then
        -- opening is only acceptable if no committed data went missing
        local ok = pcall(all_there, s)
        s:close()
        assert(ok, "store opened after its MANIFEST was truncated, with committed data missing")
      else
        assert.matches("^cannot open store at ", msg)
      end
    end)

    it("a missing SST file is refused, not silently ignored", function()
      local dir = helpers.tmpdir("nosst") .. "/db"
      make_store(dir)
      local removed = false
      for _, n in ipairs(listdir(dir)) do
        if n:match("%.sst$") and not removed then
          assert(os.remove(dir .. "/" .. n))
          removed = true
        end
      end
      assert.is_true(removed)
      local s, msg = synaptic.open(dir)
      if s then
        local ok = pcall(all_there, s)
        s:close()
        assert(ok, "store opened without one of its SST files, with data missing")
      else
        assert.matches("^cannot open store at '.*/db': table file %d+%.sst is missing %(the MANIFEST lists it%); salvage", msg)
      end
    end)
  end)
end)
