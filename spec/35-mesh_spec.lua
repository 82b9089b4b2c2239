-- examples/mesh.lua: three processes on loopback (a training runtime, a
-- relay, a watcher) converge byte for byte, within its own deadline.
local helpers = require "helpers"

local function q(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

local ROOT = (function()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/spec/[^/]*$") or "."
  local p = io.popen("cd " .. q(dir) .. " && pwd")
  local abs = p:read("l")
  p:close()
  return abs
end)()

-- The children load the same core this process did (build/ or build-asan/).
local function absolute(path)
  local cwd = os.getenv("PWD") or ROOT
  local out = {}
  for entry in path:gmatch("[^;]+") do
    out[#out + 1] = entry:sub(1, 1) == "/" and entry or (cwd .. "/" .. entry)
  end
  return table.concat(out, ";")
end

describe("examples/mesh.lua", function()
  it("runs three nodes in three processes and reports convergence", function()
    local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(
      q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"), q(absolute(package.cpath)))
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
