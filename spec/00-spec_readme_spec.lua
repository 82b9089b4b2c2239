-- The spec index: spec/README.md names every spec file, by topic band,
-- and names no file that is not there. A new spec file is a line in it.
local helpers = require "helpers"

local function named_in_readme()
  local names = {}
  for name in helpers.read_file("spec/README.md"):gmatch("`([%w_%-]+_spec%.lua)`") do names[name] = true end
  return names
end

describe("spec/README.md", function()
  local files = {}
  for _, path in ipairs(helpers.command_lines("ls spec/*_spec.lua")) do
    files[#files + 1] = path:match("^spec/(.*)$")
  end

  it("names every spec file", function()
    assert.is_true(#files > 40)
    local named, missing = named_in_readme(), {}
    for _, f in ipairs(files) do
      if not named[f] then missing[#missing + 1] = f end
    end
    assert.are.same({}, missing)
  end)

  it("names only spec files that exist", function()
    local present, stale = {}, {}
    for _, f in ipairs(files) do present[f] = true end
    for name in pairs(named_in_readme()) do
      if not present[name] then stale[#stale + 1] = name end
    end
    table.sort(stale)
    assert.are.same({}, stale)
  end)

  it("files each spec under the band its number belongs to", function()
    local band
    for line in helpers.read_file("spec/README.md"):gmatch("[^\n]+") do
      local lo, hi = line:match("^## .*%((%d+)%-(%d*)%)$")
      if lo then band = { tonumber(lo), tonumber(hi) or 99 } end
      local n = line:match("^%- `(%d+)%-[%w_]+_spec%.lua`")
      if n then
        n = tonumber(n)
        assert.is_truthy(band, line)
        assert.is_true(n >= band[1] and n <= band[2], line .. " is outside its band")
      end
    end
  end)
end)
