-- Polls do bounded work (issue 17): a burst of local writes is pushed over
-- several ticks in messages of bounded size, in order, and every write
-- arrives; a receiver applies each message whole, so a message's entries
-- bound the work of one poll. Counted in messages and entries, never timed.
local synaptic = require "synaptic"
local helpers = require "helpers"

local open = helpers.small_store
local CFG = { sync_interval_seconds = 1000, heartbeat_interval_seconds = 1000, peer_timeout_seconds = 5000 }
local function conf(id) local t = { node_id = id } for k, v in pairs(CFG) do t[k] = v end return t end

describe("bounded polls", function()
  after_each(helpers.cleanup)

  it("a burst of 3,000 writes goes out over several ticks, at most 1,024 a tick, 256 a message", function()
    local a, b = open("a"), open("b")
    local ea, eb = synaptic.sync_engine(a, conf "A"), synaptic.sync_engine(b, conf "B")
    ea:add_peer("B"); eb:add_peer("A")
    ea:tick(1); eb:tick(1); ea:outbox(); eb:outbox()
    local w = synaptic.floats(4)
    for i = 1, 3000 do w[1] = i; a:put_weights("burst", i % 500, w, {}) end
    local ticks, t = 0, 1
    local before = 0
    while eb:stats().weights_received < 3000 and ticks < 20 do
      t = t + 1
      ticks = ticks + 1
      ea:tick(t)
      local msgs = ea:outbox()
      assert.is_true(#msgs >= 1 and #msgs <= 4, "messages in one tick: " .. #msgs)
      for _, m in ipairs(msgs) do
        assert.is_true(eb:receive("A", m.bytes))
        local got = eb:stats().weights_received
        assert.is_true(got - before <= 256, "entries in one message: " .. (got - before))
        before = got
      end
    end
    assert.equal(3000, eb:stats().weights_received)
    assert.is_true(ticks >= 3, "ticks: " .. ticks)
    for l = 0, 499 do
      assert.equal(a:get_weights("burst", l):tobytes(), b:get_weights("burst", l):tobytes())
    end
    ea:close(); eb:close(); a:close(); b:close()
  end)
end)
