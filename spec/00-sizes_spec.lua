-- Small files, short functions: no C or Lua source over 700 lines and no
-- function over 80, so each concern stays readable in one screenful or two.
-- Functions are found by this codebase's own layout: a C function's body
-- opens with "{" and closes with "}" in column 0 (its signature is the lines
-- just above the "{"); a Lua function ends at the first "end" indented as
-- its "function" line.
local MAX_FILE_LINES = 700
local MAX_FUNCTION_LINES = 80

local helpers = require "helpers"

local function tracked(patterns) return helpers.command_lines("git ls-files " .. patterns) end

local function read_lines(path)
  local lines = {}
  for l in io.lines(path) do lines[#lines + 1] = l end
  return lines
end

-- { {name, first, last}, ... } for the C functions of a file
local function c_functions(lines)
  local found, open = {}, nil
  for i, l in ipairs(lines) do
    if l:match("^{") then
      local first = i
      while first > 1 do
        local prev = lines[first - 1]
        if prev == "" or prev:match("^[#}]") or prev:match("[;/]%s*$") then break end
        first = first - 1
      end
      open = { (lines[first]:match("([%w_]+)%s*%(") or "?"), first }
    elseif l:match("^}") and open then
      found[#found + 1] = { open[1], open[2], i }
      open = nil
    end
  end
  return found
end

local function lua_functions(lines)
  local found = {}
  for i, l in ipairs(lines) do
    local indent = l:match("^(%s*)local%s+function%s") or l:match("^(%s*)function%s")
      or l:match("^(%s*)[%w_.%[%]\"]+%s*=%s*function%s*%(") or l:match("^(%s*)local%s+[%w_]+%s*=%s*function%s*%(")
    if indent and not l:match("%f[%w]end%s*%)?,?%s*$") then
      local name = l:match("function%s+([%w_.:]+)") or l:match("([%w_.%[%]\"]+)%s*=%s*function") or "?"
      for j = i + 1, #lines do
        if lines[j]:match("^" .. indent .. "end%f[^%w]") then
          found[#found + 1] = { name, i, j }
          break
        end
      end
    end
  end
  return found
end

describe("source sizes", function()
  local c_files = tracked("'csrc/*.c' 'csrc/*.h' 'fuzz/*.c' 'spec/*.c' 'bench/*.c'")
  local lua_files = tracked("'lua/*.lua' 'spec/*.lua' 'bench/*.lua' 'examples/*.lua' 'fuzz/*.lua' bin/synaptic")

  it("finds the sources", function()
    assert.is_true(#c_files > 20 and #lua_files > 20)
  end)

  it("no source file is over " .. MAX_FILE_LINES .. " lines", function()
    local long = {}
    for _, list in ipairs { c_files, lua_files } do
      for _, f in ipairs(list) do
        local n = #read_lines(f)
        if n > MAX_FILE_LINES then long[#long + 1] = f .. " (" .. n .. ")" end
      end
    end
    assert.are.same({}, long)
  end)

  -- The core and the Lua modules keep to STYLE's ~600 lines a file.
  local MAX_MODULE_LINES = 600
  local over_allowed = {}

  it("no file under csrc/ or lua/ is over " .. MAX_MODULE_LINES .. " lines", function()
    local long = {}
    for _, f in ipairs(tracked("'csrc/*.c' 'csrc/*.h' 'lua/*.lua'")) do
      local n = #read_lines(f)
      if n > MAX_MODULE_LINES and not over_allowed[f] then long[#long + 1] = f .. " (" .. n .. ")" end
    end
    assert.are.same({}, long)
  end)

  it("no function is over " .. MAX_FUNCTION_LINES .. " lines", function()
    local long = {}
    local function check(f, funcs)
      for _, fn in ipairs(funcs) do
        local n = fn[3] - fn[2] + 1
        if n > MAX_FUNCTION_LINES then long[#long + 1] = f .. ":" .. fn[2] .. " " .. fn[1] .. " (" .. n .. ")" end
      end
    end
    for _, f in ipairs(c_files) do check(f, c_functions(read_lines(f))) end
    for _, f in ipairs(lua_files) do
      -- a spec's describe/it blocks are data, not functions to split
      if not f:match("_spec%.lua$") then check(f, lua_functions(read_lines(f))) end
    end
    assert.are.same({}, long)
  end)
end)
