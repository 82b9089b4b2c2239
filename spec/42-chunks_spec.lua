-- Large records travel in bounded chunks: a 4 MiB weight record between two
-- transport-free engines with chunk_bytes = 64 KiB through a network that
-- loses, duplicates and reorders chunks; and forged chunk sets (re-encoded
-- with valid envelopes, so only the chunk checks can catch them) are
-- rejected and counted, the store untouched.
local synaptic = require "synaptic"
local helpers = require "helpers"

local CHUNK = 64 * 1024

local function open(tag)
  return assert(synaptic.open(helpers.tmpdir(tag), { write_buffer_mb = 4, cache_mb = 1 }))
end

local function conf(id, extra)
  local t = { node_id = id, chunk_bytes = CHUNK, sync_interval_seconds = 2,
              heartbeat_interval_seconds = 1, peer_timeout_seconds = 30, chunk_timeout_seconds = 5 }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- ---- forging messages (spec/support/wire.lua) ----------------------------------

local wire = require "wire"
local bin, NIL, MAP = wire.bin, wire.NIL, wire.MAP
local unpack_mp, pack_mp, crc32 = wire.unpack, wire.pack, wire.crc32

-- envelope [version, type, codec, raw_len, crc, meta, blob]; meta is the
-- message's fields in schema order; entries are arrays in log_entry order:
-- entries are maps by field name
local E = { kind = "kind", cf = "cf", key = "key", hlc = "hlc", origin = "origin", seq = "seq",
            len = "len", total = "total", off = "off" }

local function decode(bytes)
  local env = unpack_mp(bytes, 1)
  local meta = unpack_mp(env[6].s, 1)
  return { type = env[2], fields = meta, payload = env[7].s }
end

local function encode(m)
  local meta = pack_mp(m.fields)
  return pack_mp { 1, m.type, 0, #m.payload, crc32(meta .. m.payload), bin(meta), bin(m.payload) }
end

-- ---- helpers ------------------------------------------------------------------

local function big_weights(seed)
  return synaptic.floats(helpers.weights(1024 * 1024, seed))   -- 4 MiB of float32
end

-- Chunk messages a writer's engine pushes to one peer.
local function chunks_from(store, engine, put)
  put(store)
  engine:tick(1)
  local out = {}
  for _, m in ipairs(engine:outbox()) do
    local d = decode(m.bytes)
    local en = d.fields[3] and type(d.fields[3]) == "table" and d.fields[3][1]
    if en and type(en) == "table" and en.total ~= nil and en.total ~= NIL then out[#out + 1] = { bytes = m.bytes, msg = d } end
  end
  return out
end

describe("chunked records", function()
  after_each(helpers.cleanup)

  it("p2p_config checks chunk_bytes against max_message_bytes", function()
    local c = synaptic.p2p_config {}
    assert.equal(1024 * 1024, c.chunk_bytes)
    assert.equal(8192 - 1024, synaptic.p2p_config { max_message_bytes = 8192 }.chunk_bytes)
    assert.has_error(function() synaptic.p2p_config { max_message_bytes = 8192, chunk_bytes = 65536 } end,
                     "p2p_config: chunk_bytes must be at most max_message_bytes - 1024")
    assert.has_error(function() synaptic.p2p_config { chunk_bytes = 10 } end)
    assert.has_error(function() synaptic.p2p_config { chunk_bytes = 65536, max_reassembly_bytes = 2048 } end)
  end)

  it("a 4 MiB weight record replicates in 64 KiB chunks through loss, duplication and reordering", function()
    local a, b = open("a"), open("b")
    local ea = synaptic.sync_engine(a, conf "A")
    local eb = synaptic.sync_engine(b, conf "B")
    ea:add_peer("B"); eb:add_peer("A")
    local w = big_weights(7)
    a:put_weights("big", 0, w, { 0.25 })
    a:put_weights("small", 0, { 1, 2, 3 }, {})
    -- a seeded lossy network: 25% loss, 20% duplicates, every batch shuffled
    local seed = 12345
    local function rand()
      seed = (seed * 48271) % 2147483647
      return seed / 2147483647
    end
    local lost, duplicated = 0, 0
    local function carry(from, to, id)
      local batch = {}
      for _, m in ipairs(from:outbox()) do
        if rand() < 0.25 then lost = lost + 1
        else
          batch[#batch + 1] = m.bytes
          if rand() < 0.2 then batch[#batch + 1] = m.bytes; duplicated = duplicated + 1 end
        end
      end
      for i = #batch, 2, -1 do
        local j = math.floor(rand() * i) + 1
        batch[i], batch[j] = batch[j], batch[i]
      end
      for _, bytes in ipairs(batch) do to:receive(id, bytes) end
    end
    local done
    for t = 1, 200 do
      ea:tick(t); eb:tick(t)
      carry(ea, eb, "A"); carry(eb, ea, "B")
      local got = b:get_weights("big", 0)
      if got and got:tobytes() == w:tobytes() and b:get_weights("small", 0) then done = t; break end
    end
    assert.is_number(done, "the 4 MiB record did not arrive")
    if os.getenv("CHUNK_DEBUG") then print(done, lost, duplicated, require("sim").canon(eb:stats()), require("sim").canon(ea:stats())) end
    assert.is_true(lost > 0 and duplicated > 0)
    local sa, sb = ea:stats(), eb:stats()
    assert.is_true(sa.chunks_sent >= 4 * 1024 * 1024 * 0.8 / CHUNK, "chunks_sent " .. sa.chunks_sent)
    assert.is_true(sb.chunks_received > 0)
    assert.is_true(sb.chunk_sets_completed >= 1)
    assert.equal(0, sb.rejected)
    assert.equal(1, sb.weights_received >= 1 and 1 or 0)
    local _, bias = b:get_weights("big", 0)
    assert.equal(helpers.f32(0.25), bias[1])
    -- every message stayed within a chunk plus its envelope
    ea:tick(300); eb:tick(300); carry(ea, eb, "A"); carry(eb, ea, "B")
    assert.equal(0, eb:stats().reassembly_bytes)
    assert.is_true((b:verify()))
    ea:close(); eb:close(); a:close(); b:close()
  end)

  it("keeps reassembly memory per peer under its cap and times out an abandoned set", function()
    local a, b = open("a"), open("b")
    local ea = synaptic.sync_engine(a, conf "A")
    local eb = synaptic.sync_engine(b, conf("B", { max_reassembly_bytes = 1024 * 1024 }))
    ea:add_peer("B")
    local msgs = chunks_from(a, ea, function(s) s:put_weights("big", 0, big_weights(3), {}) end)
    assert.is_true(#msgs > 16)
    -- a set larger than the 1 MiB cap is refused at its first chunk
    eb:receive("A", msgs[1].bytes)
    assert.equal(0, eb:stats().reassembly_bytes)
    assert.is_true(eb:stats().chunk_sets_dropped >= 1)
    eb:close()
    -- with room, half a set is held, then dropped once idle past chunk_timeout
    eb = synaptic.sync_engine(b, conf "B")
    eb:tick(1)
    for i = 1, #msgs // 2 do eb:receive("A", msgs[i].bytes) end
    assert.is_true(eb:stats().reassembly_bytes > 0)
    eb:tick(100)
    assert.equal(0, eb:stats().reassembly_bytes)
    assert.is_true(eb:stats().chunk_sets_dropped >= 1)
    assert.is_nil(b:get_weights("big", 0))
    ea:close(); eb:close(); a:close(); b:close()
  end)

  it("rejects and counts forged chunk sets, and the store is untouched", function()
    local a, b = open("a"), open("b")
    local ea = synaptic.sync_engine(a, conf "A")
    ea:add_peer("B")
    local msgs = chunks_from(a, ea, function(s) s:put_weights("big", 0, big_weights(5), {}) end)
    local n = #msgs
    assert.is_true(n > 16)
    local function variant(i, change)
      local d = decode(msgs[i].bytes)
      local m = { type = d.type, fields = d.fields, payload = d.payload }
      change(m, m.fields[3][1])
      m.fields[3][1][E.len] = #m.payload
      return encode(m)
    end
    -- the forging itself is faithful: an untouched re-encoding is accepted
    local eb = synaptic.sync_engine(b, conf "B")
    eb:tick(1)
    assert.is_true(eb:receive("A", variant(1, function() end)))
    eb:close()

    local cases = {
      { "a flipped byte in one chunk (the record CRC fails once whole)", function(i, m)
          if i == 3 then m.payload = m.payload:sub(1, 99) .. string.char(m.payload:byte(100) ~ 1) .. m.payload:sub(101) end
        end },
      { "totals that disagree within one set", function(i, _, en)
          if i == 2 then en[E.total] = en[E.total] + 1 end
        end },
      { "overlapping chunks with different bytes", function(i, m, en)
          if i == 2 then en[E.off] = en[E.off] - 100; m.payload = ("x"):rep(#m.payload) end
        end },
      { "a chunk past the end of its record", function(i, _, en)
          if i == 2 then en[E.off] = en[E.total] end
        end },
      { "a set whose hlc changes half-way", function(i, _, en)
          if i == 2 then en[E.hlc] = en[E.hlc] + 1 end
        end },
    }
    for _, case in ipairs(cases) do
      local store = open("f")
      local e = synaptic.sync_engine(store, conf "B")
      e:tick(1)
      for i = 1, n do
        e:receive("A", variant(i, function(m, en) case[2](i, m, en) end))
      end
      local st = e:stats()
      assert.is_true(st.rejected >= 1, case[1])
      assert.is_true(st.chunk_sets_rejected >= 1, case[1])
      assert.equal(0, st.chunk_sets_completed, case[1])
      assert.is_nil(store:get_weights("big", 0), case[1])
      assert.is_true((store:verify()), case[1])
      e:close(); store:close()
    end
    ea:close(); a:close(); b:close()
  end)
end)
