-- The source tree's architecture, checked: each csrc/ folder is a layer, and
-- a layer includes only the layers below it. The core has no Lua in it; the
-- bindings reach RocksDB, msgpack and ZeroMQ only through the core. Includes
-- are followed transitively, so a core header that pulled <rocksdb/c.h> into
-- a binding would be caught too.
local helpers = require "helpers"

-- What each layer may include (besides itself and the C library).
local allowed = {
  base  = {},
  codec = { base = true },
  store = { base = true, codec = true },
  sync  = { base = true, codec = true, store = true },
  net   = { base = true, codec = true, store = true, sync = true },
  nats  = { base = true, codec = true, store = true, sync = true },
  nn    = { base = true },
  lua   = { base = true, codec = true, store = true, sync = true, net = true, nats = true, nn = true },
}

local function list(pattern) return helpers.command_lines("ls " .. pattern) end

local function includes(path)
  local quoted, system = {}, {}
  for line in io.lines(path) do
    local q = line:match('^%s*#%s*include%s+"([^"]+)"')
    local s = line:match("^%s*#%s*include%s+<([^>]+)>")
    if q then quoted[#quoted + 1] = q end
    if s then system[#system + 1] = s end
  end
  return quoted, system
end

-- Every system header reachable from path through the project's own headers.
local function reachable_system(path, seen, acc)
  seen, acc = seen or {}, acc or {}
  if seen[path] then return acc end
  seen[path] = true
  local quoted, system = includes(path)
  for _, s in ipairs(system) do acc[s] = acc[s] or path end
  for _, q in ipairs(quoted) do reachable_system("csrc/" .. q, seen, acc) end
  return acc
end

local function layer_of(path) return path:match("^csrc/([^/]+)/") end

local lua_header = { ["lua.h"] = true, ["lauxlib.h"] = true, ["lualib.h"] = true }
local function is_backend(h)
  return h:match("^rocksdb/") or h:match("^msgpack") or h == "zmq.h" or h:match("^nats/") or h == "sodium.h"
end

describe("layering", function()
  local files = list("csrc/*/*.[ch]")

  it("every source file lives in a known layer folder", function()
    assert.is_true(#files > 20)
    for _, f in ipairs(files) do
      assert.is_truthy(allowed[layer_of(f)], f .. " is not in a layer folder")
    end
    assert.are.same({}, list("csrc/*.[ch]"))
  end)

  it("a layer includes only itself and the layers below it", function()
    for _, f in ipairs(files) do
      local me = layer_of(f)
      for _, q in ipairs((includes(f))) do
        local dep = q:match("^([^/]+)/")
        assert.is_truthy(dep, f .. ' includes "' .. q .. '" without its layer folder')
        assert.is_true(dep == me or allowed[me][dep] == true,
          f .. " (" .. me .. ") may not include " .. q)
      end
    end
  end)

  it("the core includes no Lua header, and Lua headers appear in csrc/lua only", function()
    for _, f in ipairs(files) do
      if layer_of(f) ~= "lua" then
        for h, via in pairs(reachable_system(f)) do
          assert.is_nil(lua_header[h] and h, f .. " reaches <" .. h .. "> through " .. via)
        end
      end
    end
  end)

  it("the bindings reach no RocksDB, msgpack or ZeroMQ header", function()
    for _, f in ipairs(files) do
      if layer_of(f) == "lua" then
        for h, via in pairs(reachable_system(f)) do
          assert.is_falsy(is_backend(h), f .. " reaches <" .. h .. "> through " .. via)
        end
      end
    end
  end)

  it("only csrc/store calls RocksDB and only csrc/net calls ZeroMQ", function()
    for _, f in ipairs(files) do
      local src = helpers.read_file(f)
      if layer_of(f) ~= "store" then
        assert.is_nil(src:match("rocksdb_%w+%("), f .. " calls RocksDB")
      end
      if layer_of(f) ~= "net" then
        assert.is_nil(src:match("[^%w_]zmq_%w+%("), f .. " calls ZeroMQ")
      end
    end
  end)
end)
