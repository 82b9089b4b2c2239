-- P2P defaults and limits have one home, the C core: synaptic.core exports
-- them (p2p_defaults, p2p_limits) and p2p.config builds its defaults and
-- checks from them, so the Lua front end cannot accept what the transport
-- refuses, nor fill in a default the engine would not use.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"

describe("p2p defaults and limits", function()
  after_each(helpers.cleanup)

  it("refuses a 256-byte node_id and accepts 255, the transport's limit", function()
    assert.equal(255, core.p2p_limits.node_id_bytes)
    assert.has_error(function() synaptic.p2p_config { node_id = ("n"):rep(256) } end,
                     "p2p_config: node_id must be 1 to 255 bytes without NUL")
    local id = ("n"):rep(255)
    assert.equal(id, synaptic.p2p_config({ node_id = id }).node_id)
    -- and the transport takes what p2p.config let through
    local s = helpers.small_store("p2p-defaults")
    local node = assert(synaptic.node(s, { node_id = id }))
    assert.equal(id, node:node_id())
    node:close()
    s:close()
  end)

  it("fills in exactly the defaults the core exports", function()
    local c = synaptic.p2p_config {}
    for k, v in pairs(core.p2p_defaults) do
      assert.equal(v, c[k], k)
      assert.equal(math.type(v), math.type(c[k]), k)
    end
    -- every default p2p.config reports comes from the core, but for the
    -- normalised peer list and the front end's own listen policy
    for k, v in pairs(c) do
      if k ~= "peers" and k ~= "insecure" then
        assert.equal(core.p2p_defaults[k], v, k)
      end
    end
    assert.same({}, c.peers)
    assert.is_false(c.insecure)
  end)

  it("checks every integer field against the core's range", function()
    for name, r in pairs(core.p2p_limits.ranges) do
      local lo, hi = r[1], r[2]
      local msg = ("p2p_config: %s must be between %d and %d"):format(name, lo, hi)
      assert.has_error(function() synaptic.p2p_config { [name] = lo - 1 } end, msg)
      assert.has_error(function() synaptic.p2p_config { [name] = hi + 1 } end, msg)
    end
  end)

  it("accepts the core's conflict strategies and no other", function()
    for _, name in ipairs(core.p2p_limits.conflict_strategies) do
      assert.equal(name, synaptic.p2p_config({ conflict_resolution = name }).conflict_resolution)
    end
    assert.has_error(function() synaptic.p2p_config { conflict_resolution = "coin_flip" } end)
  end)

  it("keeps a chunk and its message under max_message_bytes by the core's overhead", function()
    local overhead = core.p2p_limits.chunk_overhead_bytes
    assert.equal(8192 - overhead, synaptic.p2p_config({ max_message_bytes = 8192 }).chunk_bytes)
  end)
end)
