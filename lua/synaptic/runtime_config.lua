--- The runtime's config: its defaults and checks (synaptic.runtime(path,
-- config) raises `runtime: ...` naming the field, at the caller's line).
local sync = require "synaptic.runtime_sync"
local retention = require "synaptic.runtime_checkpoints"
local core = require "synaptic.core"

local M = {}

local DEFAULTS = {
  auto_save_interval = 300, max_checkpoints = 10, compression_enabled = true,
  backup_enabled = true, sync_with_peers = false, seed = 42, clock = core.now,
  keep_best = false, keep_every_hours = false, learning_rate = 0.1, max_weight_versions = 2,
}

-- level 3: the caller of synaptic.runtime (through runtime.open); experts:
-- the runtime's expert list (keep_best may name one)
function M.check(config, experts_list)
  local c = {}
  for k, v in pairs(DEFAULTS) do c[k] = v end
  if config == nil then return c end
  if type(config) ~= "table" then error("runtime: config must be a table", 3) end
  for k, v in pairs(config) do
    local d = DEFAULTS[k]
    if d == nil and k ~= "keep_best" and k ~= "p2p" and k ~= "merge_rule" then
      error(("runtime: unknown config field '%s'"):format(tostring(k)), 3)
    end
    local want = type(d)
    if k == "p2p" or k == "merge_rule" then   -- merge_rule: checked with the node's config
      if k == "p2p" and type(v) ~= "table" then error("runtime: p2p must be a table (a P2PSyncConfig)", 3) end
    elseif k == "keep_best" then
      local experts = {}
      for _, e in ipairs(experts_list) do experts[e.name] = true end
      v = retention.check_keep_best(v, experts, 4)
    elseif k == "keep_every_hours" then
      v = retention.check_keep_every_hours(v, 4)
    elseif type(v) ~= want then
      error(("runtime: config field '%s' must be a %s"):format(k, want), 3)
    end
    c[k] = v
  end
  if c.p2p and not c.sync_with_peers then
    error("runtime: p2p is given but sync_with_peers is not true", 3)
  end
  if c.sync_with_peers and not c.p2p then
    error("runtime: sync_with_peers = true needs p2p = {...} (the node's config)", 3)
  end
  if c.merge_rule ~= nil then sync.checked_config({ merge_rule = c.merge_rule }, 3) end
  if c.p2p then c.p2p = sync.checked_config(c.p2p, 3, c.merge_rule) end
  -- a store that syncs keeps the merge window besides max_weight_versions
  -- (the core's SN_MERGE_WINDOW), so the default 2 is safe under sync too
  if c.auto_save_interval < 0 then error("runtime: auto_save_interval must be >= 0", 3) end
  if math.type(c.max_checkpoints) ~= "integer" or c.max_checkpoints < 1 then
    error("runtime: max_checkpoints must be an integer >= 1", 3)
  end
  if math.type(c.seed) ~= "integer" then error("runtime: seed must be an integer", 3) end
  if not (c.learning_rate > 0 and c.learning_rate < 10) then
    error("runtime: learning_rate must be in (0, 10)", 3)
  end
  return c
end

return M
