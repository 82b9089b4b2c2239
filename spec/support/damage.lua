-- A small store with every kind of record, and ways to damage its files,
-- for 35-damage_report_spec.lua and 36-salvage_spec.lua.
local synaptic = require "synaptic"
local helpers = require "helpers"

local M = {}

M.EXPERTS, M.LAYERS, M.STATES, M.CONFIGS, M.METRICS = 4, 3, 300, 5, 20

function M.state(i) return ("state %d "):format(i) .. string.rep("abcdefghij", 3) end

-- Weights large enough for blob files, states and metrics in small SSTs.
-- Returns the ids of its two checkpoints.
function M.build(dir)
  local s = assert(synaptic.open(dir, { write_buffer_mb = 1 }))
  for e = 1, M.EXPERTS do
    for l = 0, M.LAYERS - 1 do assert(s:put_weights("exp" .. e, l, helpers.weights(3000, e * 10 + l))) end
  end
  for i = 1, M.STATES do assert(s:put_state("key" .. i, M.state(i))) end
  for i = 1, M.CONFIGS do
    assert(s:put_config { expert_id = "exp" .. i, domain = "d", parameter_count = i,
                          learning_rate = 0.1, architecture = { 1 } })
  end
  for i = 1, M.METRICS do assert(s:record_metric("loss", 1 / i, i)) end
  local cps = { assert(s:create_checkpoint { system_version = "one" }) }
  assert(s:put_weights("exp1", 0, helpers.weights(3000, 99)))
  cps[2] = assert(s:create_checkpoint { system_version = "two" })
  assert(s:compact())
  s:close()
  return cps
end

function M.files(dir, pattern)
  local t = {}
  for _, n in ipairs(helpers.listdir(dir)) do
    if n:match(pattern) then t[#t + 1] = dir .. "/" .. n end
  end
  return t
end

-- The SST file holding a column family (its name is in the properties block).
function M.sst_of(dir, cf)
  for _, f in ipairs(M.files(dir, "%.sst$")) do
    if helpers.read_file(f):find(cf, 1, true) then return f end
  end
end

function M.flip(file, at)
  local d = helpers.read_file(file)
  helpers.write_file(file, d:sub(1, at - 1) .. string.char(d:byte(at) ~ 0xff) .. d:sub(at + 1))
end

-- Flips the byte at fraction frac of the file (0 < frac < 1).
function M.flip_at(file, frac)
  local size = #helpers.read_file(file)
  M.flip(file, math.max(1, math.floor(size * frac)))
end

return M
