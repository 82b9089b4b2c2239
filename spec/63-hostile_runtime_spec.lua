-- A neighbour that breaks you, the runtime's side (issue 19): a peer's write
-- of the wrong shape is stored and replicated as it was given, but a runtime
-- refuses to load it — it keeps serving with the layer it has, names the
-- refused write in rt:stats(), and reopens.
local synaptic = require "synaptic"
local helpers = require "helpers"

-- A runtime's store and a peer's, joined by two sync engines; carry() moves
-- messages until quiet.
local function with_peer(rt, dir)
  local peer = assert(synaptic.open(dir .. "/peer", { write_buffer_mb = 1, cache_mb = 1 }))
  local ea = synaptic.sync_engine(rt.store, { node_id = "rt" })
  local eb = synaptic.sync_engine(peer, { node_id = "peer" })
  ea:add_peer("peer"); eb:add_peer("rt")
  local p, t = { store = peer }, 0
  function p.carry()
    for _ = 1, 4 do
      t = t + 1
      ea:tick(t); eb:tick(t)
      for _ = 1, 50 do
        local n = 0
        for _, m in ipairs(ea:outbox()) do n = n + 1; eb:receive("rt", m.bytes) end
        for _, m in ipairs(eb:outbox()) do n = n + 1; ea:receive("peer", m.bytes) end
        if n == 0 then break end
      end
    end
  end
  function p.close() ea:close(); eb:close(); peer:close() end
  return p
end

local function refused_entry(rt, id, layer)
  for _, r in ipairs(rt:stats().refused) do
    if r.expert_id == id and r.layer == layer then return r end
  end
end

describe("a runtime given a wrongly shaped layer by a peer", function()
  after_each(helpers.cleanup)

  it("keeps serving and training with the layer it has, and names the refused write", function()
    local dir = helpers.tmpdir("shape")
    local rt = assert(synaptic.runtime(dir .. "/rt", { seed = 7, auto_save_interval = 3600 }))
    local before = rt.experts.coding:get_layer(1):tobytes()
    local response = rt:process("implement a function to debug this program")
    local p = with_peer(rt, dir)
    p.carry()
    assert(p.store:put_weights("coding", 1, { 1, 2, 3, 4, 5, 6, 7 }, { 1 }))
    p.carry()
    assert.equal(7, #rt.store:get_weights("coding", 1))          -- it arrived and is current
    assert.equal(response, (rt:process("implement a function to debug this program")))
    assert.equal(before, rt.experts.coding:get_layer(1):tobytes())
    assert.is_number(rt:train("implement a function to debug this program", "coding"))
    local r = refused_entry(rt, "coding", 1)
    assert.is_table(r)
    assert.equal(p.store:origin(), r.origin)
    assert.matches("has 7 weights and 1 biases, not 18432 and 192", r.reason, 1, true)
    assert.matches("refused coding layer 1", tostring(rt:stats()), 1, true)
    p.close()
    assert(rt:close())
  end)

  it("reopens on a store whose current layer is the wrong shape, with the newest fitting version", function()
    local dir = helpers.tmpdir("shape")
    local rt = assert(synaptic.runtime(dir .. "/rt", { seed = 7 }))
    local good = rt.experts.coding:get_layer(1):tobytes()
    local p = with_peer(rt, dir)
    p.carry()
    assert(p.store:put_weights("coding", 1, { 1, 2, 3, 4, 5, 6, 7 }, { 1 }))
    p.carry()
    p.close()
    assert(rt:close())
    local again = assert(synaptic.runtime(dir .. "/rt", { seed = 7 }))
    assert.equal(good, again.experts.coding:get_layer(1):tobytes())
    assert.is_string((again:process("implement a function to debug this program")))
    assert.is_table(refused_entry(again, "coding", 1))
    assert(again:reload())
    assert.is_table(refused_entry(again, "coding", 1))
    -- training the layer writes a fitting child of the refused write: the refusal ends
    for _ = 1, 3 do again:train("implement a function to debug this program", "coding") end
    assert(again:flush())
    assert.equal(18432, #again.store:get_weights("coding", 1))
    assert.is_nil(refused_entry(again, "coding", 1))
    assert(again:close())
  end)
end)
