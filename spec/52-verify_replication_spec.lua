-- verify() checks the replication ranges too: every log entry decodes and
-- each origin's seqs run without a gap; conflict records decode as their
-- kind with the identity their key names; superseded markers are empty.
-- Damage is written with a test-only raw hook (core._replication_raw),
-- which the core registers only when SYNAPTIC_TEST_HOOKS is set (make test
-- sets it).
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"

local CF_CONFIG = 2

local function open(tag)
  return assert(synaptic.open(helpers.tmpdir(tag), { write_buffer_mb = 1, cache_mb = 1 }))
end

local function log_key(origin, seq) return "\1L" .. origin .. string.pack(">I8", seq) end
local function ident_key(tag, cf, key, hlc, origin)
  return "\1" .. tag .. string.char(cf) .. string.pack(">I2", #key) .. key .. string.pack(">I8", hlc) .. origin
end

local function problems(store)
  local ok, report = store:verify()
  local out = {}
  for _, p in ipairs(report.problems) do out[#out + 1] = p.where .. ": " .. p.error end
  return ok, table.concat(out, "\n"), report
end

local function config(id, domain)
  return { expert_id = id, domain = domain, parameter_count = 1, learning_rate = 0.1, architecture = { 1 } }
end

describe("verify and the replication ranges", function()
  after_each(helpers.cleanup)

  it("passes on a store with a log and kept conflicts", function()
    local a, b = open("a"), open("b")
    local ea = synaptic.sync_engine(a, { node_id = "A" })
    local eb = synaptic.sync_engine(b, { node_id = "B" })
    ea:add_peer("B"); eb:add_peer("A")
    a:put_config(config("x", "one"))
    b:put_config(config("x", "two"))
    a:put_weights("x", 0, { 1 }, {})
    for t = 1, 4 do
      ea:tick(t); eb:tick(t)
      for _ = 1, 10 do
        for _, m in ipairs(ea:outbox()) do eb:receive("A", m.bytes) end
        for _, m in ipairs(eb:outbox()) do ea:receive("B", m.bytes) end
      end
    end
    assert.equal(1, #a:conflicts("x"))
    local ok, text, report = problems(a)
    assert.is_true(ok, text)
    assert.is_true(report.records >= 3 + 3)   -- records plus log entries and the conflict
    ea:close(); eb:close(); a:close(); b:close()
  end)

  it("reports a malformed log entry, a gap in a log, and bad conflict keys and records", function()
    local s = open("s")
    s:put_weights("x", 0, { 1 }, {})
    s:put_weights("x", 0, { 2 }, {})
    s:put_weights("x", 0, { 3 }, {})
    local origin = s:origin()
    assert.is_true((s:verify()))

    -- a log entry that does not decode
    core._replication_raw(s, log_key(origin, 4), "junk")
    local ok, text = problems(s)
    assert.is_false(ok)
    assert.matches("default/", text)
    core._replication_raw(s, log_key(origin, 4), nil)
    assert.is_true((s:verify()))

    -- a gap: entry 2 of 3 gone
    core._replication_raw(s, log_key(origin, 2), nil)
    ok, text = problems(s)
    assert.is_false(ok)
    assert.matches("seq 3 where 2 was due", text)

    -- a conflict record that is not a config, and one whose key is cut short
    local hlc = 12345 << 16
    core._replication_raw(s, ident_key("X", CF_CONFIG, "x", hlc, origin), "junk")
    core._replication_raw(s, "\1X\2\0\9short", "")
    -- a superseded marker with a value, and a key of no known range
    core._replication_raw(s, ident_key("S", CF_CONFIG, "x", hlc, origin), "value")
    core._replication_raw(s, "\1Q", "")
    ok, text = problems(s)
    assert.is_false(ok)
    assert.matches("malformed conflict key", text)
    assert.matches("superseded marker with a value", text)
    assert.matches("unknown replication key", text)
    local lines = 0
    for _ in text:gmatch("[^\n]+") do lines = lines + 1 end
    assert.equal(5, lines, text)
    -- outside the replication ranges the hook refuses
    assert.has_error(function() core._replication_raw(s, "synaptic.origin", "x") end)
    s:close()
  end)
end)
