-- examples/mesh.lua: three runtime processes on loopback, each learning a
-- different domain at once, all end up routing all three (no reload), with
-- byte-equal weights, within its own deadline.
local helpers = require "helpers"

local q, ROOT = helpers.shq, helpers.ROOT

describe("examples/mesh.lua", function()
  it("runs three learning runtimes in three processes that end up knowing all three domains", function()
    local env = helpers.child_env()
    local ok, code, out = helpers.run(env .. "timeout 90 lua5.4 " .. q(ROOT .. "/examples/mesh.lua"))
    assert.is_true(ok, out)
    assert.equal(0, code, out)
    for _, role in ipairs { "a", "b", "c" } do
      assert.matches("%[" .. role .. "%]%s+[%d.]+s connected to 2 peers", out)
      assert.matches("%[" .. role .. "%] knows all three: yes", out)
    end
    assert.matches("%[a%][^\n]* now routes 'harbor cactus violin meadow' to tool_use [^\n]*<%- learned from b", out)
    assert.matches("%[b%][^\n]* now routes 'pepper glacier saddle orbit' to context [^\n]*<%- learned from c", out)
    assert.matches("%[c%][^\n]* now routes 'zebra lantern quartz velvet' to mathematics [^\n]*<%- learned from a", out)
    assert.matches("byte%-equal weights on all three stores: yes", out)
    assert.matches("every runtime routes all three domains: yes", out)
    assert.matches("\nconverged: yes\n", out)
  end)
end)
