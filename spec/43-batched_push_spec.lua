-- Pushes of local writes travel many to a message: a burst of small writes
-- reaches a peer in a few messages, in order, every one applied; writes of
-- different kinds keep their order; and a pushed message with one damaged
-- record (its envelope CRC made good again, so only the record's own check
-- can catch it) is refused whole, the receiver's store untouched, and the
-- writes arrive intact later by anti-entropy. The receiver reuses one codec
-- state for every record, so it must come out of the refused one as good as
-- new.
local synaptic = require "synaptic"
local helpers = require "helpers"

local function open(tag)
  return assert(synaptic.open(helpers.tmpdir(tag), { write_buffer_mb = 4, cache_mb = 1 }))
end

local function conf(id)
  return { node_id = id, sync_interval_seconds = 2, heartbeat_interval_seconds = 1,
           peer_timeout_seconds = 30 }
end

local function pair()
  local a, b = open("a"), open("b")
  local ea, eb = synaptic.sync_engine(a, conf "A"), synaptic.sync_engine(b, conf "B")
  ea:add_peer("B")
  eb:add_peer("A")
  return a, b, ea, eb
end

-- Carries messages both ways until both outboxes stay empty.
local function settle(ea, eb, t)
  for _ = 1, 50 do
    t = t + 1
    ea:tick(t)
    eb:tick(t)
    local moved = 0
    for _, m in ipairs(ea:outbox()) do moved = moved + 1; eb:receive("A", m.bytes) end
    for _, m in ipairs(eb:outbox()) do moved = moved + 1; ea:receive("B", m.bytes) end
    if moved == 0 then return t end
  end
  return t
end

-- ---- the envelope's CRC, made good again after a change to the payload ------

local wire = require "wire"

-- msgpack bin at pos: first byte of its body, its length, the next position
local function mp_bin(s, pos)
  local v, nxt = wire.unpack(s, pos)
  assert(getmetatable(v) == wire.BIN, "not a msgpack bin")
  return nxt - #v.s, #v.s
end

-- The message with the payload byte `back` bytes before its end flipped and
-- its CRC fixed:
-- envelope [version, type, codec, raw_len, crc, meta, payload].
local function damage(bytes, back)
  assert(bytes:byte(1) == 0x97, "not a record envelope")
  local pos = 2
  for _ = 1, 4 do _, pos = wire.unpack(bytes, pos) end
  local crc_at = pos
  local _, after_crc = wire.unpack(bytes, pos)
  local meta_at, meta_len = mp_bin(bytes, after_crc)
  local pay_at, pay_len = mp_bin(bytes, meta_at + meta_len)
  assert(back >= 1 and back <= pay_len)
  local p = pay_at + pay_len - back
  local out = bytes:sub(1, p - 1) .. string.char(bytes:byte(p) ~ 0x10) .. bytes:sub(p + 1)
  local crc = wire.crc32(out:sub(meta_at, meta_at + meta_len - 1) .. out:sub(pay_at, pay_at + pay_len - 1))
  -- the CRC is re-encoded as uint32: the envelope may grow by a few bytes
  return out:sub(1, crc_at - 1) .. "\xce" .. string.pack(">I4", crc) .. out:sub(after_crc)
end

describe("batched pushes", function()
  it("a burst of small writes reaches a peer in a few messages, every one applied", function()
    local a, b, ea, eb = pair()
    local t = settle(ea, eb, 0)
    local n = 400
    for i = 1, n do a:put_weights("burst", i, synaptic.floats(helpers.weights(1024, i))) end
    t = t + 1
    ea:tick(t)
    local msgs = ea:outbox()
    -- 400 records of ~4 KiB: under 2 MiB, so a few 1 MiB messages
    assert.is_true(#msgs >= 1 and #msgs <= 4, "messages: " .. #msgs)
    for _, m in ipairs(msgs) do assert.is_true(eb:receive("A", m.bytes)) end
    assert.equal(n, eb:stats().weights_received)
    for i = 1, n, 37 do
      assert.equal(a:get_weights("burst", i):tobytes(), b:get_weights("burst", i):tobytes())
    end
    assert.is_true((b:verify()))
    ea:close(); eb:close(); a:close(); b:close()
  end)

  it("writes of different kinds keep their order and all arrive", function()
    local a, b, ea, eb = pair()
    local t = settle(ea, eb, 0)
    for i = 1, 30 do
      a:put_weights("mixed", i, synaptic.floats(helpers.weights(256, i)))
      a:put_config { expert_id = "mixed" .. i, domain = "d" .. i, parameter_count = i,
                     learning_rate = 0.01, architecture = { 4, 2 } }
      if i % 10 == 0 then a:create_checkpoint() end
    end
    t = t + 1
    ea:tick(t)
    local msgs = ea:outbox()
    assert.is_true(#msgs < 90, "messages: " .. #msgs)
    for _, m in ipairs(msgs) do assert.is_true(eb:receive("A", m.bytes)) end
    local st = eb:stats()
    assert.equal(30, st.weights_received)
    assert.equal(30, st.configs_received)
    assert.equal(3, st.checkpoints_received)
    assert.equal("d30", b:get_config("mixed30").domain)
    settle(ea, eb, t)
    assert.equal(ea:digest(), eb:digest())
    ea:close(); eb:close(); a:close(); b:close()
  end)

  it("refuses a pushed message with one damaged record whole, then gets the writes intact", function()
    local a, b, ea, eb = pair()
    local t = settle(ea, eb, 0)
    local w = {}
    for i = 1, 3 do
      w[i] = synaptic.floats(helpers.weights(1024, 100 + i))
      a:put_weights("dmg", i, w[i])
    end
    t = t + 1
    ea:tick(t)
    -- the push is the one big message (heartbeats may go with it)
    local bytes = ""
    for _, m in ipairs(ea:outbox()) do
      if #m.bytes > #bytes then bytes = m.bytes end
    end
    assert.is_true(#bytes > 3 * 3000)
    -- the last bytes of the payload are the third record's weights
    local before = eb:stats().rejected
    local ok, err = eb:receive("A", damage(bytes, 200))
    assert.is_nil(ok)
    assert.matches("rejected: .*checksum", err)
    assert.equal(before + 1, eb:stats().rejected)
    for i = 1, 3 do assert.is_nil(b:get_weights("dmg", i)) end
    -- damage inside a record's zstd-coded lane: the receiver's decoder
    -- fails mid-frame, and must decode the next message as good as new
    local last_frame = 0
    repeat
      local at = bytes:find("\x28\xb5\x2f\xfd", last_frame + 1, true)
      last_frame = at or last_frame
    until not at
    assert.is_true(last_frame > 0, "no zstd frame in the message")
    ok, err = eb:receive("A", damage(bytes, #bytes - (last_frame + 12) + 1))
    assert.is_nil(ok)
    assert.matches("rejected: record .*layer 3", err)
    assert.equal(before + 2, eb:stats().rejected)
    for i = 1, 3 do assert.is_nil(b:get_weights("dmg", i)) end
    -- an undamaged copy of the same message is taken as it is
    assert.is_true(eb:receive("A", bytes))
    for i = 1, 3 do assert.equal(w[i]:tobytes(), b:get_weights("dmg", i):tobytes()) end
    assert.is_true((b:verify()))
    ea:close(); eb:close(); a:close(); b:close()
  end)
end)
