-- What the cheap paths rely on, asserted with RocksDB's own count of the
-- blob values it read (the perf context, through the _blob_reads test hook):
-- the newest version, weight_versions, layers, list_experts, a checkpoint, a
-- put and trimming read no weight payload once the weights are in blob
-- files; verify reads each record once whatever the checkpoints pin; and the
-- answers (version numbers, lists) stay right while histories change.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"

local N = 2048   -- 8 KiB of floats: a blob value (blob files take 4 KiB and up)

-- values that do not compress below the blob threshold
local function w(seed)
  local t, x = {}, seed
  for i = 1, N do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = x / 2147483648 - 0.5
  end
  return synaptic.floats(t)
end

local function blobs_read(f)
  local n0 = core._blob_reads()
  local r = table.pack(f())
  return core._blob_reads() - n0, table.unpack(r, 1, r.n)
end

-- experts a, b, c; layers 0 and 2; 5 versions each; flushed and reopened
local function flushed_store(opts)
  local path = helpers.tmpdir("cost_paths") .. "/db"
  local s = assert(synaptic.open(path))
  for v = 1, 5 do
    s:batch(function(b)
      for _, x in ipairs({ "a", "b", "c" }) do
        for _, l in ipairs({ 0, 2 }) do b:put_weights(x, l, w(v + l)) end
      end
    end)
  end
  assert(s:compact())
  s:close()
  return assert(synaptic.open(path, opts)), path
end

describe("cost paths", function()
  after_each(helpers.cleanup)

  it("the hook counts blob reads: a get reads the one payload it returns", function()
    local s = flushed_store()
    local n, got = blobs_read(function() return s:get_weights("a", 0, 2) end)
    assert.equal(1, n)
    assert.same(w(2):totable(), got:totable())
    s:close()
  end)

  it("lookups, lists, checkpoints and puts read no weight payload", function()
    local s = flushed_store()
    local n, got, _, info = blobs_read(function() return s:get_weights("b", 2) end)
    assert.equal(1, n)                                   -- the newest, and nothing else
    assert.equal(5, info.version)
    assert.same(w(7):totable(), got:totable())
    local cases = {
      { function() return s:weight_versions("c", 0) end, { 1, 2, 3, 4, 5 } },
      { function() return s:layers("a") end, { 0, 2 } },
      { function() return s:list_experts() end, { "a", "b", "c" } },
      { function() return s:put_weights("a", 0, w(9)) end, 6 },
      { function() return s:put_weights("a", 0, w(10)) end, 7 },
      { function() return s:weight_versions("a", 0) end, { 1, 2, 3, 4, 5, 6, 7 } },
    }
    for i, c in ipairs(cases) do
      local reads, r = blobs_read(c[1])
      assert.equal(0, reads, "case " .. i .. " read a payload")
      assert.same(c[2], r)
    end
    local reads, id = blobs_read(function() return s:create_checkpoint { system_version = "cp" } end)
    assert.equal(0, reads)
    local cp = s:get_checkpoint(id)
    assert.equal(6, #cp.pins)
    for _, p in ipairs(cp.pins) do
      assert.equal(p.expert_id == "a" and p.layer == 0 and 7 or 5, p.version)
    end
    s:close()
  end)

  it("trimming reads no payload and keeps the newest versions and the pinned ones", function()
    local s = flushed_store { max_weight_versions = 2 }
    local cp = s:create_checkpoint { system_version = "pin v5" }
    local reads = blobs_read(function()
      s:put_weights("a", 0, w(20))
      s:put_weights("a", 0, w(21))
    end)
    assert.equal(0, reads)
    assert.same({ 5, 6, 7 }, s:weight_versions("a", 0))   -- v5 pinned, 6 and 7 the newest two
    assert.is_nil((s:get_weights("a", 0, 4)))
    s:delete_checkpoint(cp)
    s:put_weights("a", 0, w(22))
    assert.same({ 7, 8 }, s:weight_versions("a", 0))
    local got, _, info = s:get_weights("a", 0)
    assert.equal(8, info.version)
    assert.same(w(22):totable(), got:totable())
    -- a trimmed layer is still listed (its newest writes are held)
    assert.same({ 0, 2 }, s:layers("a"))
    s:close()
  end)

  it("trimming that resumes where it stopped still reaches a write unpinned later", function()
    local s = assert(synaptic.open(helpers.tmpdir("cost_trim") .. "/db", { max_weight_versions = 2 }))
    for i = 1, 10 do s:put_weights("t", 0, { i }) end
    local cp = s:create_checkpoint { system_version = "pins v10" }
    for i = 11, 30 do s:put_weights("t", 0, { i }) end
    assert.same({ 10, 29, 30 }, s:weight_versions("t", 0))
    s:batch(function(b)                          -- two writes and their trims in one batch
      b:put_weights("t", 0, { 31 })
      b:put_weights("t", 0, { 32 })
    end)
    assert.same({ 10, 31, 32 }, s:weight_versions("t", 0))
    assert.is_true(s:delete_checkpoint(cp))
    assert.equal(33, s:put_weights("t", 0, { 33 }))
    assert.same({ 32, 33 }, s:weight_versions("t", 0))
    for i = 34, 40 do s:put_weights("t", 0, { i }) end
    assert.same({ 39, 40 }, s:weight_versions("t", 0))
    assert.same({ 40 }, s:get_weights("t", 0):totable())
    assert.is_true((s:verify()))
    s:close()
  end)

  it("list_experts and layers follow delete_expert, with and without a pin, across a reopen", function()
    local s, path = flushed_store()
    s:put_config { expert_id = "cfg-only", domain = "d", parameter_count = 1,
                   learning_rate = 0.1, architecture = { 1 } }
    assert.is_true(s:delete_expert("b"))
    assert.same({ "a", "c", "cfg-only" }, s:list_experts())
    assert.same({}, s:layers("b"))
    local cp = s:create_checkpoint { system_version = "c pinned" }
    assert.is_true(s:delete_expert("c"))
    -- the pinned records stay held, so c still has weights (as weight_versions says)
    assert.same({ "a", "c", "cfg-only" }, s:list_experts())
    assert.same({ 0, 2 }, s:layers("c"))
    assert.same({ 5 }, s:weight_versions("c", 0))
    s:close()
    s = assert(synaptic.open(path))
    local reads, experts = blobs_read(function() return s:list_experts() end)
    assert.equal(0, reads)
    assert.same({ "a", "c", "cfg-only" }, experts)
    assert.is_true(s:delete_checkpoint(cp))
    -- v5 stays (only max_weight_versions trims); the tombstone took number 6
    s:put_weights("c", 0, w(3))
    assert.same({ 5, 7 }, s:weight_versions("c", 0))
    assert.same({ 0, 2 }, s:layers("c"))
    s:put_weights("b", 5, w(4))                  -- a deleted expert written again
    assert.same({ 5 }, s:layers("b"))
    assert.same({ "a", "b", "c", "cfg-only" }, s:list_experts())
    assert.is_true((s:verify()))
    s:close()
  end)

  it("lists experts whose ids are prefixes of others, with bytes below '0'", function()
    local s = assert(synaptic.open(helpers.tmpdir("cost_ids") .. "/db"))
    local ids = { "a", "a\1", "a\1b", "\1", "a b", "b" }
    for i, id in ipairs(ids) do
      s:put_weights(id, i, { i })
      s:put_weights(id, 0, { i })
    end
    local want = { table.unpack(ids) }
    table.sort(want)
    assert.same(want, s:list_experts())
    for i, id in ipairs(ids) do assert.same({ 0, i }, s:layers(id)) end
    s:close()
  end)

  it("version numbers stay right while batches change histories between reads", function()
    local s = flushed_store()
    local _, _, info = s:get_weights("a", 2)     -- walked and remembered
    assert.equal(5, info.version)
    s:batch(function(b)
      b:put_weights("a", 2, w(30))
      -- read beside the open batch: the store as it is before the commit
      local _, _, i2 = s:get_weights("a", 2)
      assert.equal(5, i2.version)
      b:put_weights("a", 2, w(31))
    end)
    _, _, info = s:get_weights("a", 2)
    assert.equal(7, info.version)
    assert.has_error(function()
      s:batch(function(b)
        b:put_weights("a", 2, w(32))
        error("dropped")
      end)
    end, "dropped")
    _, _, info = s:get_weights("a", 2)
    assert.equal(7, info.version)
    assert.equal(8, s:put_weights("a", 2, w(33)))
    s:batch(function(b)
      b:put_weights("a", 2, w(34))
      b:delete_expert("a")
    end)
    assert.is_nil((s:get_weights("a", 2)))
    assert.same({}, s:weight_versions("a", 2))
    -- history entries stay: the next write gets the next number (after the tombstone)
    local v = s:put_weights("a", 2, w(35))
    local _, _, i3 = s:get_weights("a", 2)
    assert.equal(v, i3.version)
    assert.same({ v }, s:weight_versions("a", 2))
    s:close()
  end)

  it("a handle that cached its walks agrees with a fresh one after mixed writes", function()
    local path = helpers.tmpdir("cost_mixed") .. "/db"
    local s = assert(synaptic.open(path, { max_weight_versions = 3 }))
    local x = 7
    local function rnd(n)
      x = (x * 1103515245 + 12345) % 2147483648
      return x % n
    end
    local function state(st)
      local out = {}
      for _, e in ipairs({ "p", "q" }) do
        for l = 0, 2 do
          local _, _, info = st:get_weights(e, l)
          out[#out + 1] = table.concat(st:weight_versions(e, l), ",") .. "/" ..
            tostring(info and info.version)
        end
      end
      return table.concat(out, " ")
    end
    for step = 1, 120 do
      local e, l = rnd(2) == 0 and "p" or "q", rnd(3)
      local op = rnd(10)
      if op < 5 then
        local v = s:put_weights(e, l, { step })
        local _, _, info = s:get_weights(e, l)
        assert.equal(v, info.version)
      elseif op < 7 then
        s:batch(function(b)
          b:put_weights(e, l, { step })
          b:put_weights(e, (l + 1) % 3, { step })
          if rnd(2) == 0 then b:put_weights(e, l, { -step }) end
        end)
      elseif op == 7 then
        s:delete_expert(e)
      elseif op == 8 then
        s:create_checkpoint { system_version = "s" .. step }
      else
        s:batch(function(b)
          b:put_weights(e, l, { step })
          b:delete_expert(e)
          if rnd(2) == 0 then b:put_weights(e, l, { step + 0.5 }) end
        end)
      end
      state(s)   -- reads that fill the cache between writes
    end
    local cached = state(s)
    s:close()
    s = assert(synaptic.open(path, { max_weight_versions = 3 }))
    assert.equal(state(s), cached)
    assert.is_true((s:verify()))
    s:close()
  end)

  for _, strategy in ipairs({ "merge", "latest_timestamp" }) do
  it("cached version numbers stay right while peers' writes arrive, older clocks among them (" .. strategy .. ")", function()
    -- A peer's batch keeps the rank cache (its count grows by the writes
    -- added; a cached number stays while every added write sorts after
    -- it): what each handle reports must be what a fresh handle walks.
    local dir = helpers.tmpdir("cost_peers_" .. strategy)
    local cfg = { conflict_resolution = strategy, sync_interval_seconds = 1, heartbeat_interval_seconds = 1 }
    local names = { "a", "b", "c" }
    local st, en = {}, {}
    for _, n in ipairs(names) do
      st[n] = assert(synaptic.open(dir .. "/" .. n))
      en[n] = synaptic.sync_engine(st[n], setmetatable({ node_id = n }, { __index = cfg }))
    end
    for _, n in ipairs(names) do
      for _, m in ipairs(names) do if m ~= n then en[n]:add_peer(m) end end
    end
    local x = 11
    local function rnd(k)   -- the high bits: an LCG's low bits repeat
      x = (x * 1103515245 + 12345) % 2147483648
      return (x >> 16) % k
    end
    local function state(s)
      local out = {}
      for l = 0, 1 do
        local _, _, info = s:get_weights("p", l)
        out[#out + 1] = table.concat(s:weight_versions("p", l), ",") .. "/" .. tostring(info and info.version)
      end
      return table.concat(out, " ")
    end
    local t, delivered = 0, 0
    for step = 1, 150 do
      local n = names[rnd(3) + 1]
      if rnd(4) > 0 then
        -- a local write is the newest the store knows: numbered last
        local l = rnd(2)
        local v = st[n]:put_weights("p", l, { step, -step })
        assert.equal(v, select(3, st[n]:get_weights("p", l)).version)
        local vs = st[n]:weight_versions("p", l)   -- a walk: refills the count
        assert.equal(vs[#vs], v)
      else
        -- deliver one node's messages to the others: partial, so writes
        -- cross with older clocks than what the receivers wrote since
        t = t + 1
        assert(en[n]:tick(t))
        for _, m in ipairs(en[n]:outbox()) do
          en[m.to]:receive(n, m.bytes)
          delivered = delivered + 1
        end
      end
      if rnd(3) == 0 then for _, o in ipairs(names) do state(st[o]) end end   -- reads that fill the caches
    end
    assert.is_true(delivered > 50)
    local cached = {}
    for _, n in ipairs(names) do cached[n] = state(st[n]); en[n]:close(); st[n]:close() end
    for _, n in ipairs(names) do
      local s = assert(synaptic.open(dir .. "/" .. n))
      assert.equal(state(s), cached[n])
      s:close()
    end
  end)
  end

  it("verify reads each record once, however many checkpoints pin it", function()
    local s = flushed_store()
    local r0, ok0 = blobs_read(function() return s:verify() end)
    assert.is_true(ok0)
    for i = 1, 10 do s:create_checkpoint { system_version = "p" .. i } end
    assert(s:compact())
    local r1, ok1, report = blobs_read(function() return s:verify() end)
    assert.is_true(ok1)
    assert.equal(30, r0)                         -- 3 experts x 2 layers x 5 versions
    assert.equal(r0, r1)
    assert.same({}, report.problems)
    s:close()
  end)
end)
