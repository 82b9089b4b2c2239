-- Shared test helpers: fresh temporary directories that are removed after
-- the run, and small float utilities.
local helpers = {}

local made = {}

function helpers.tmpdir(tag)
  local p = os.tmpname()
  os.remove(p)
  p = p .. "-synaptic-" .. (tag or "t")
  assert(os.execute("mkdir -p '" .. p .. "'"))
  made[#made + 1] = p
  return p
end

function helpers.cleanup()
  for i = #made, 1, -1 do
    os.execute("rm -rf '" .. made[i] .. "'")
    made[i] = nil
  end
end

-- Deterministic Gaussian-ish weights (sigma 0.05) without math.random state
-- leaking between tests.
function helpers.weights(n, seed)
  local s = seed or 1
  local t = {}
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    local u1 = (s + 1) / 2147483649
    s = (s * 1103515245 + 12345) % 2147483648
    local u2 = s / 2147483648
    t[i] = 0.05 * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
  end
  return t
end

-- float32 rounding of a Lua number, to compare what comes back exactly.
function helpers.f32(x)
  return (string.unpack("<f", string.pack("<f", x)))
end

-- Metric points without their origin (checked to name a store), for
-- comparing timestamps and values.
function helpers.points(list)
  local out = {}
  for i, p in ipairs(list) do
    assert(type(p.origin) == "string" and #p.origin == 36, "a point without its origin")
    out[i] = { timestamp = p.timestamp, value = p.value }
  end
  return out
end

-- The lines a shell command prints on stdout, as a list.
function helpers.command_lines(cmd)
  local out = {}
  local f = io.popen(cmd .. " 2>/dev/null")
  for line in f:lines() do out[#out + 1] = line end
  f:close()
  return out
end

function helpers.run(cmd)
  local f = io.popen(cmd .. " 2>&1")
  local out = f:read("a")
  local ok, _, code = f:close()
  return ok, code, out
end

function helpers.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function helpers.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Names in a directory, sorted (hidden files included).
function helpers.listdir(dir)
  local p = io.popen("ls -A '" .. dir .. "'")
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- The little-endian float32 bytes of a table of numbers.
function helpers.f32_bytes(t)
  local parts = {}
  for i = 1, #t do parts[i] = string.pack("<f", t[i]) end
  return table.concat(parts)
end

-- P2P node specs: fast timers, small stores, and polling until a condition
-- holds (bounded by rounds, never by a timing assert).
helpers.FAST_P2P = { heartbeat_interval_seconds = 0.1, sync_interval_seconds = 0.3,
                     peer_timeout_seconds = 1 }

function helpers.p2p_conf(extra)
  local t = {}
  for k, v in pairs(helpers.FAST_P2P) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

function helpers.small_store(tag)
  local synaptic = require "synaptic"
  return assert(synaptic.open(helpers.tmpdir(tag), { write_buffer_mb = 1, cache_mb = 1 }))
end

-- Poll every node up to n rounds (4 ms each); true as soon as cond() holds.
-- Without cond it just runs the rounds.
function helpers.poll_until(nodes, cond, n)
  for _ = 1, n or 250 do
    for _, node in ipairs(nodes) do node:poll(4) end
    if cond and cond() then return true end
  end
  return false
end

-- Shell-quote a string.
function helpers.shq(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

-- The repository root, from this file's path, made absolute.
helpers.ROOT = (function()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/spec/[^/]*$") or "."
  local p = io.popen("cd " .. helpers.shq(dir) .. " && pwd")
  local abs = p:read("l")
  p:close()
  return abs
end)()

-- Environment for a child lua5.4: the repo's Lua files and the same core
-- this process loaded (build/ or build-asan/), so the sanitizer run covers
-- child processes too.
function helpers.child_env()
  local cwd, out = os.getenv("PWD") or helpers.ROOT, {}
  for entry in package.cpath:gmatch("[^;]+") do
    out[#out + 1] = entry:sub(1, 1) == "/" and entry or (cwd .. "/" .. entry)
  end
  local root = helpers.ROOT
  return ("LUA_PATH=%s LUA_CPATH=%s "):format(
    helpers.shq(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
    helpers.shq(table.concat(out, ";")))
end

return helpers
