-- examples/mesh.lua: three processes on loopback (a training runtime, a
-- relay, a watcher) converge byte for byte, within its own deadline.
local helpers = require "helpers"

local q, ROOT = helpers.shq, helpers.ROOT

describe("examples/mesh.lua", function()
  it("runs three nodes in three processes and reports convergence", function()
    local env = helpers.child_env()
    local ok, code, out = helpers.run(env .. "timeout 60 lua5.4 " .. q(ROOT .. "/examples/mesh.lua"))
    assert.is_true(ok, out)
    assert.equal(0, code)
    assert.matches("%[trainer%] round 3: mean loss", out)
    assert.matches("%[watcher%]%s+[%d.]+s%s+coding/%d+%s+v%d+", out)
    assert.matches("%[watcher%]%s+[%d.]+s%s+checkpoint %S+ %(mesh%-final%) arrived", out)
    assert.matches("relay   fingerprint %x+  byte%-equal: yes", out)
    assert.matches("watcher fingerprint %x+  byte%-equal: yes", out)
    assert.matches("same answer from a runtime on each store: yes", out)
    assert.matches("\nconverged: yes\n", out)
  end)
end)
