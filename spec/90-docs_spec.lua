-- The docs check: every public name, enumerated from the live module, its
-- metatables, a runtime and the CLI parser, must be documented.
--
--   docs/api.md  a heading naming each module key (`synaptic.open`, or
--                `core.mlp` for a key only the C core has) and each method
--                as `<prefix>:<method>` (prefix: PREFIX below, else the part
--                of the metatable name after "synaptic."); the p2p and
--                runtime config fields as `field` anywhere in the text.
--   docs/cli.md  a heading `synaptic <command>` per subcommand, and each of
--                its --flags inside that command's section.
-- It also fails on a heading that names a function or method that does not
-- exist (stale docs). Names starting with "_" are private and skipped.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"

-- How a type's methods are written in docs/api.md headings.
local PREFIX = {
  ["synaptic.sync_engine"] = "engine",
  ["synaptic.runtime"] = "rt",
}

local function private(name)
  return type(name) ~= "string" or name:sub(1, 1) == "_"
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if not private(k) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

---------------------------------------------------------------------------
-- Reading the docs
---------------------------------------------------------------------------

local function read_doc(path)
  local f = io.open(helpers.ROOT .. "/" .. path, "rb")
  assert(f, path .. " is missing")
  local text = f:read("a")
  f:close()
  return text
end

-- Markdown headings outside fenced code blocks, with their level and the
-- text of their section (up to the next heading of the same or a higher level).
local function sections(text)
  local lines, list, fenced = {}, {}, false
  for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    if line:match("^%s*```") or line:match("^%s*~~~") then
      fenced = not fenced
    elseif not fenced then
      local hashes, title = line:match("^(#+)%s+(.-)%s*$")
      if hashes then list[#list + 1] = { level = #hashes, title = title, line = i } end
    end
  end
  for k, s in ipairs(list) do
    local last = #lines
    for j = k + 1, #list do
      if list[j].level <= s.level then last = list[j].line - 1; break end
    end
    s.body = table.concat(lines, "\n", s.line, last)
  end
  return list
end

-- `name` as a whole word in text: not inside a longer identifier or flag
-- (`store:put` is not found in `store:put_weights`, `--node` not in `--node-id`).
local function has_word(text, name)
  local init = 1
  while true do
    local i, j = text:find(name, init, true)
    if not i then return false end
    local before, after = text:sub(i - 1, i - 1), text:sub(j + 1, j + 1)
    if not before:match("[%w_]") and not after:match("[%w_%-]") then return true end
    init = i + 1
  end
end

local function heading_with(list, name)
  for _, s in ipairs(list) do
    if has_word(s.title, name) then return s end
  end
  return nil
end

local function fail_listing(what, missing)
  if #missing > 0 then
    error(("%s: %d undocumented: %s"):format(what, #missing, table.concat(missing, ", ")), 0)
  end
end

---------------------------------------------------------------------------
-- Live objects, one of each type
---------------------------------------------------------------------------

local live = {}

local function open_objects()
  local dir = helpers.tmpdir("docs")
  live.store = assert(synaptic.open(dir .. "/store", { write_buffer_mb = 1, cache_mb = 1 }))
  assert(live.store:batch(function(b) live.batch_meta = getmetatable(b) end))
  live.floats = synaptic.floats(2)
  live.mlp = core.mlp({ 2, 2 }, 1)
  live.engine = synaptic.sync_engine(live.store, { node_id = "docs" })
  live.node = assert(synaptic.node(live.store, {}))
  local public, secret = synaptic.keypair()
  -- every field given, so the validated config holds all of them
  live.p2p_config = synaptic.p2p_config { node_id = "docs", listen = "tcp://127.0.0.1:0",
    curve = { public = public, secret = secret, server_key = public } }
  live.runtime = assert(synaptic.runtime(dir .. "/rt", { seed = 1 }))
  live.runtime_stats = live.runtime:stats()
end

local function close_objects()
  for _, k in ipairs { "runtime", "node", "engine", "store" } do
    if live[k] then live[k]:close() end
  end
  live = {}
  helpers.cleanup()
end

-- Every metatable named synaptic.*: the registry's and the live objects'.
local function metatables()
  local found = {}
  for k, v in pairs(debug.getregistry()) do
    if type(k) == "string" and k:match("^synaptic%.") and type(v) == "table" then found[k] = v end
  end
  local objects = { live.batch_meta }
  for _, k in ipairs { "store", "floats", "mlp", "engine", "node", "p2p_config", "runtime", "runtime_stats" } do
    objects[#objects + 1] = getmetatable(live[k])
  end
  for _, mt in ipairs(objects) do
    assert(type(mt) == "table" and type(mt.__name) == "string", "an object without a named metatable")
    found[mt.__name] = found[mt.__name] or mt
  end
  return found
end

-- name -> list of method names; types with no methods are left out.
local function methods_by_type()
  local out = {}
  for name, mt in pairs(metatables()) do
    local methods = mt.__index
    if type(methods) ~= "table" then methods = mt.__methods end   -- floats: __index is a function
    if type(methods) == "table" then
      local list = {}
      for _, k in ipairs(sorted_keys(methods)) do
        if type(methods[k]) == "function" then list[#list + 1] = k end
      end
      if #list > 0 then out[name] = list end
    elseif mt.__index ~= nil then
      error(("cannot enumerate the methods of %s (its __index is a %s and it has no __methods table); "
             .. "update spec/90-docs_spec.lua"):format(name, type(mt.__index)), 0)
    end
  end
  return out
end

local function prefix_of(type_name)
  return PREFIX[type_name] or type_name:match("^synaptic%.(.+)$")
end

---------------------------------------------------------------------------
-- The CLI parser
---------------------------------------------------------------------------

-- The CLI's argparse parser, as synaptic.cli.arguments builds it for cli.run.
local function cli_parser()
  return require("synaptic.cli.arguments").parser()
end

-- The long form of each option or flag a parser declares.
local function flags_of(parser)
  local list = {}
  for _, o in ipairs(parser._options or {}) do
    local long
    for _, alias in ipairs(o._aliases or { o._name }) do
      if alias:sub(1, 2) == "--" and (not long or #alias > #long) then long = alias end
    end
    long = long or o._name
    if long ~= "-h" and long ~= "--help" then list[#list + 1] = long end
  end
  table.sort(list)
  return list
end

---------------------------------------------------------------------------
-- The checks
---------------------------------------------------------------------------

describe("docs", function()
  local api, cli_doc

  setup(function()
    api = read_doc("docs/api.md")
    cli_doc = read_doc("docs/cli.md")
    open_objects()
  end)

  teardown(close_objects)

  it("docs/api.md has a heading for every module function and field", function()
    local heads, missing, count = sections(api), {}, 0
    local function walk(t, path)
      for _, k in ipairs(sorted_keys(t)) do
        local name = path .. "." .. k
        count = count + 1
        if not heading_with(heads, name) then missing[#missing + 1] = name end
        -- a public submodule table of functions (synaptic.p2p.*): its functions too
        local v = t[k]
        if type(v) == "table" and getmetatable(v) == nil then
          for _, x in pairs(v) do
            if type(x) == "function" then walk(v, name); break end
          end
        end
      end
    end
    walk(synaptic, "synaptic")
    -- modules scripts require on their own
    walk({ safetensors = require "synaptic.safetensors", report = require "synaptic.report" }, "synaptic")
    -- keys only the C core has (synaptic.core.mlp...): `core.<key>`
    for _, k in ipairs(sorted_keys(core)) do
      if synaptic[k] == nil then
        count = count + 1
        if not heading_with(heads, "core." .. k) then missing[#missing + 1] = "core." .. k end
      end
    end
    assert(count >= 15, "too few module names found: the enumeration is broken")
    fail_listing("docs/api.md module names", missing)
  end)

  it("docs/api.md has a heading for every method of every type", function()
    local heads, missing, types = sections(api), {}, methods_by_type()
    for _, want in ipairs { "synaptic.store", "synaptic.batch", "synaptic.floats", "synaptic.mlp",
                            "synaptic.sync_engine", "synaptic.node", "synaptic.runtime" } do
      assert(types[want], "no methods found for " .. want .. ": the enumeration is broken")
    end
    for _, type_name in ipairs(sorted_keys(types)) do
      local prefix = prefix_of(type_name)
      for _, m in ipairs(types[type_name]) do
        local name = prefix .. ":" .. m
        if not heading_with(heads, name) then missing[#missing + 1] = name end
      end
    end
    fail_listing("docs/api.md methods", missing)
  end)

  it("docs/api.md names every P2P and runtime config field", function()
    local missing = {}
    local function check(what, t)
      local keys = sorted_keys(t)
      assert(#keys >= 8, "too few " .. what .. " fields found: the enumeration is broken")
      for _, k in ipairs(keys) do
        if not api:find("`" .. k .. "`", 1, true) then missing[#missing + 1] = what .. "." .. k end
      end
    end
    check("p2p_config", live.p2p_config)
    check("runtime config", live.runtime.config)
    fail_listing("docs/api.md config fields", missing)
  end)

  it("docs/api.md documents no function or method that does not exist", function()
    local types, by_prefix = methods_by_type(), {}
    for type_name, list in pairs(types) do
      local set = by_prefix[prefix_of(type_name)] or {}
      for _, m in ipairs(list) do set[m] = true end
      by_prefix[prefix_of(type_name)] = set
    end
    local stale = {}
    for _, s in ipairs(sections(api)) do
      local first = s.title:match("^`?([%w_%.:]+)")
      if s.level >= 3 and first then
        local prefix, method = first:match("^([%w_]+):([%w_]+)$")
        if prefix and by_prefix[prefix] and not by_prefix[prefix][method] then
          stale[#stale + 1] = first
        elseif first:match("^synaptic%.") then
          local v = setmetatable({ safetensors = require "synaptic.safetensors", report = require "synaptic.report" },
                                 { __index = synaptic })
          for part in first:gmatch("%.([%w_]+)") do v = type(v) == "table" and v[part] or nil end
          if v == nil then stale[#stale + 1] = first end
        elseif first:match("^core%.") and core[first:sub(6)] == nil then
          stale[#stale + 1] = first
        end
      end
    end
    if #stale > 0 then
      error("docs/api.md documents names that do not exist: " .. table.concat(stale, ", "), 0)
    end
  end)

  it("docs/cli.md has a section for every subcommand, naming each of its flags", function()
    local heads, missing = sections(cli_doc), {}
    local parser = cli_parser()
    local commands = {}
    local function walk(p, path)
      for _, c in ipairs(p._commands or {}) do
        local name = path .. " " .. c._name
        commands[#commands + 1] = name
        local s = heading_with(heads, name)
        if not s then
          missing[#missing + 1] = name
        else
          for _, flag in ipairs(flags_of(c)) do
            if not has_word(s.body, flag) then missing[#missing + 1] = name .. " " .. flag end
          end
        end
        walk(c, name)
      end
    end
    walk(parser, "synaptic")
    assert(#commands >= 5, "too few subcommands found: the enumeration is broken")
    for _, flag in ipairs(flags_of(parser)) do
      if not has_word(cli_doc, flag) then missing[#missing + 1] = "synaptic " .. flag end
    end
    fail_listing("docs/cli.md commands and flags", missing)
  end)

  -- the core's strategy table and merge rules, not a list typed here again
  it("docs/api.md names every conflict strategy and merge rule in its Conflicts section", function()
    local s = heading_with(sections(api), "Conflicts and history")
    assert(s, "no Conflicts and history section")
    local missing = {}
    for _, list in ipairs { core.p2p_limits.conflict_strategies, core.p2p_limits.merge_rules } do
      assert(#list >= 3, "too few names: the enumeration is broken")
      for _, name in ipairs(list) do
        if not s.body:find("`" .. name .. "`", 1, true) and not s.body:find('`"' .. name .. '"`', 1, true) then
          missing[#missing + 1] = name
        end
      end
    end
    fail_listing("docs/api.md strategies and merge rules", missing)
  end)
end)
