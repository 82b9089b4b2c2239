-- Stores written by the first release (format 1) open with this one: they
-- are upgraded on the first open for writing, keep every record, and their
-- checkpoints restore what they pinned. The fixture (spec/fixtures/
-- format1-stores.tar.gz, made by spec/fixtures/make_format1.lua with the
-- format-1 build) holds two synced stores: A wrote x/0 v1, v2, v3; B, having
-- seen v1, wrote its v2 last; A checkpointed when its v3 was current.
local synaptic = require "synaptic"
local helpers = require "helpers"

local CHECKPOINT = "33e3310f-2925-43fd-b1a7-877ba049e0db"

local function w(n, s)
  local t = {}
  for i = 1, n do t[i] = (i * s % 17) / 17 - 0.5 end
  return synaptic.floats(t):tobytes()
end

local function unpack_fixture()
  local dir = helpers.tmpdir("format1")
  assert(os.execute(("tar xzf %s -C %s"):format(helpers.shq(helpers.ROOT .. "/spec/fixtures/format1-stores.tar.gz"),
                                                  helpers.shq(dir))))
  return dir
end

describe("format-1 stores", function()
  teardown(helpers.cleanup)

  it("are refused read-only with a clear message until opened for writing", function()
    local dir = unpack_fixture()
    local s, msg = synaptic.open(dir .. "/a", { read_only = true })
    assert.is_nil(s)
    assert.matches("format 1", msg)
    assert.matches("open it once for writing", msg)
  end)

  it("upgrade on open: every write kept, the newest current, verify clean", function()
    local dir = unpack_fixture()
    local a = assert(synaptic.open(dir .. "/a"))
    -- four writes of x/0, numbered in (hlc, origin) order; the newest is current
    assert.same({ 1, 2, 3, 4 }, a:weight_versions("x", 0))
    local seen, last = {}, nil
    for v = 1, 4 do
      local ww, _, i = a:get_weights("x", 0, v)
      if last then assert.is_true(i.hlc > last.hlc or (i.hlc == last.hlc and i.origin > last.origin)) end
      last = i
      seen[ww:tobytes()] = true
    end
    for _, s in ipairs { 1, 5, 7, 9 } do assert.is_true(seen[w(12, s)], "write " .. s .. " kept") end
    local cur, _, info = a:get_weights("x", 0)
    assert.equal(4, info.version)
    assert.equal(a:get_weights("x", 0, 4):tobytes(), cur:tobytes())
    assert.same({ 1 }, a:weight_versions("x", 1))
    assert.same({}, a:conflicts("x", 0))            -- format 1 kept no causal links: one chain
    assert.equal("coding", a:get_config("x").domain)
    assert.same({ warm = true }, a:get_state("mode"))
    assert.equal(2, #a:metrics("loss"))
    local ok, report = a:verify()
    assert.is_true(ok, report.problems[1] and report.problems[1].error)
    a:close()
    -- and it stays upgraded: read-only opens work now
    local r = assert(synaptic.open(dir .. "/a", { read_only = true }))
    assert.same({ 1, 2, 3, 4 }, r:weight_versions("x", 0))
    r:close()
  end)

  it("a checkpoint restores exactly the write it pinned, on either store", function()
    local dir = unpack_fixture()
    for _, name in ipairs { "a", "b" } do
      local s = assert(synaptic.open(dir .. "/" .. name))
      local cp = assert(s:get_checkpoint(CHECKPOINT))
      assert.is_string(cp.pins[1].origin)
      assert.is_true(s:restore_checkpoint(CHECKPOINT))
      local cur = s:get_weights("x", 0)
      assert.equal(w(12, 7), cur:tobytes())          -- A's v3, current when it was made
      assert.is_true((s:verify()))
      s:close()
    end
  end)

  it("two upgraded stores hold the same history and keep syncing", function()
    local dir = unpack_fixture()
    local a, b = assert(synaptic.open(dir .. "/a")), assert(synaptic.open(dir .. "/b"))
    for v = 1, 4 do
      assert.equal(a:get_weights("x", 0, v):tobytes(), b:get_weights("x", 0, v):tobytes())
    end
    local ea = synaptic.sync_engine(a, { node_id = "A", sync_interval_seconds = 1, heartbeat_interval_seconds = 1 })
    local eb = synaptic.sync_engine(b, { node_id = "B", sync_interval_seconds = 1, heartbeat_interval_seconds = 1 })
    ea:add_peer("B"); eb:add_peer("A")
    b:put_weights("x", 0, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, { 1, 2, 3 }, { shape = { 3, 4 } })
    for t = 1, 6 do
      ea:tick(t); eb:tick(t)
      for _ = 1, 20 do
        local n = 0
        for _, m in ipairs(ea:outbox()) do n = n + 1; eb:receive("A", m.bytes) end
        for _, m in ipairs(eb:outbox()) do n = n + 1; ea:receive("B", m.bytes) end
        if n == 0 then break end
      end
    end
    assert.same({ 1, 2, 3, 4, 5 }, a:weight_versions("x", 0))
    assert.equal(b:get_weights("x", 0):tobytes(), a:get_weights("x", 0):tobytes())
    ea:close(); eb:close(); a:close(); b:close()
  end)
end)
