--- Test weights: Gaussian (Box–Muller) and uniform, as float32 arrays.
-- Generated once per run with a fixed seed, then the floats userdata is
-- reused by every benchmark (no per-put generation cost).
local synaptic = require "synaptic"

local M = {}

--- n values ~ N(0, sigma^2), as a plain Lua table.
local function gaussian_table(n, sigma, seed)
  math.randomseed(seed)
  local random, sqrt, log, cos, sin, pi = math.random, math.sqrt, math.log, math.cos, math.sin, math.pi
  local t = {}
  local i = 1
  while i <= n do
    local u1 = random()
    if u1 > 0 then                    -- log(0) is -inf
      local r = sqrt(-2 * log(u1)) * sigma
      local th = 2 * pi * random()
      t[i] = r * cos(th)
      if i < n then t[i + 1] = r * sin(th) end
      i = i + 2
    end
  end
  return t
end

local function uniform_table(n, lo, hi, seed)
  math.randomseed(seed)
  local random = math.random
  local t, span = {}, hi - lo
  for i = 1, n do t[i] = lo + span * random() end
  return t
end

local function prefix(t, n)
  return table.move(t, 1, n, 1, {})
end

--- Returns { gaussian = {[nfloats] = floats}, uniform = {...} } for each size
-- (in float counts). Smaller arrays are prefixes of the largest one.
function M.make(sizes, sigma)
  local max = 0
  for _, n in ipairs(sizes) do max = math.max(max, n) end
  local g = gaussian_table(max, sigma, 20240601)
  local u = uniform_table(max, -1, 1, 20240602)
  local out = { gaussian = {}, uniform = {} }
  for _, n in ipairs(sizes) do
    out.gaussian[n] = synaptic.floats(n == max and g or prefix(g, n))
    out.uniform[n] = synaptic.floats(n == max and u or prefix(u, n))
  end
  return out
end

return M
