--- demo: run examples/persistence_demo.lua in a child interpreter, with
-- this process's module paths, so it runs from a checkout as it is.
local common = require "synaptic.cli.common"

local fail, shell_quote = common.fail, common.shell_quote

local commands = {}

-- The examples a LuaRocks tree keeps for an installed rock:
-- TREE/share/lua/5.4/synaptic/cli (this module) and
-- TREE/lib/luarocks/rocks-5.4/synaptic/VERSION/examples (copy_directories).
local function installed_demo(dir)
  local tree = dir .. "/../../../../.."
  local v = _VERSION:match("%d+%.%d+")
  local p = io.popen("ls -d " .. shell_quote(tree) .. "/lib/luarocks/rocks-" .. v
                     .. "/synaptic/*/examples/persistence_demo.lua 2>/dev/null")
  local found = p and p:read("l")
  if p then p:close() end
  return found
end

-- Beside the source tree this module was loaded from, in the LuaRocks tree
-- it was installed to, or under the current directory.
local function find_demo()
  local candidates = {}
  local path = package.searchpath("synaptic.cli.demo", package.path)
  local dir = path and path:match("^(.*)/[^/]*$")
  if dir then
    candidates[#candidates + 1] = dir .. "/../../../examples/persistence_demo.lua"
    candidates[#candidates + 1] = installed_demo(dir)
  end
  candidates[#candidates + 1] = "examples/persistence_demo.lua"
  for _, c in ipairs(candidates) do
    if common.is_file(c) then return c end
  end
  fail("cannot find examples/persistence_demo.lua (run from the synaptic source tree)")
end

-- The interpreter running us, as invoked (arg's lowest index).
local function interpreter()
  local a, i = rawget(_G, "arg"), -1
  if type(a) ~= "table" or not a[-1] then return "lua5.4" end
  while a[i - 1] do i = i - 1 end
  return a[i]
end

-- The directory the demo may use: DIR if it is safe to replace, else a
-- new temporary one.
local function demo_dir(args)
  local dir = args.dir
  if dir then
    -- the demo deletes DIR, DIR-backups and DIR-restored before it starts
    if common.exists(dir) and not common.dir_is_empty(dir) and not common.is_file(dir .. "/CURRENT")
       and not args.force then
      fail("'%s' is not empty and not a store; the demo replaces it (use --force)", dir)
    end
    return dir
  end
  local t = os.tmpname()
  os.remove(t)
  assert(os.execute("mkdir -p " .. shell_quote(t)))
  return t .. "/neural_storage"
end

function commands.demo(args)
  local demo = find_demo()
  local dir = demo_dir(args)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s %s %s %s"):format(
    shell_quote(package.path), shell_quote(package.cpath), shell_quote(interpreter()),
    shell_quote(demo), shell_quote(dir))
  io.stdout:flush()
  local ok, how, code = os.execute(cmd)
  if ok then return 0 end
  if how == "signal" then fail("demo killed by signal %d", code) end
  return code ~= 0 and code or common.EXIT_FAILURE
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("demo", "Run examples/persistence_demo.lua.")
  c:argument("dir", "Where the demo keeps its store (default: a new temporary directory); it is replaced.")
    :args("?")
  c:flag("--force", "Let the demo replace DIR even if it holds other files.")
end

function M.command(args)
  return commands[args.command](args)
end

return M
