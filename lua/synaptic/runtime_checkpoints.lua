--- The runtime's checkpoint retention and step numbers (the persistence
-- manager's side of checkpoints; the store keeps them, this decides which
-- to keep and finds them by step).
--
-- After every save_state the runtime keeps:
--   * the newest max_checkpoints;
--   * with keep_best = {metric=, n=, mode=, expert=}, the best n by that
--     metric: a global_metrics field, or the runtime's overall
--     success_rate, or (with expert) a field of that expert's state;
--     mode "max" (default: higher is better) or "min";
--   * with keep_every_hours = h, one checkpoint per h hours of saves, as
--     tf.train.CheckpointManager's keep_checkpoint_every_n_hours: walking
--     oldest first, a checkpoint is kept when it was saved at least h hours
--     after the last one kept this way. Kept ones are never deleted later,
--     so the walk gives the same answer on every save.
-- A checkpoint without the metric ranks below every one that has it, in
-- either mode. Time is the runtime's clock at save (metadata.saved_at), or
-- the store's created_at for checkpoints written elsewhere.
local core = require "synaptic.core"

local R = {}

-- The fields the runtime measures at each save (runtime.lua's measure):
-- what keep_best may rank by.
R.GLOBAL_METRICS = {
  total_requests = true, average_response_time = true, memory_usage = true,
  disk_usage = true, uptime = true,
  success_rate = true,   -- the runtime's own, kept in metadata
}
R.EXPERT_METRICS = {
  activation_count = true, success_rate = true, last_updated = true, memory_usage = true,
}

local function names(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

-- keep_best as given, checked; experts: the runtime's expert names (a set).
-- Raises at `level` naming the field at fault.
function R.check_keep_best(v, experts, level)
  if v == false then return false end
  if type(v) ~= "table" or type(v.metric) ~= "string" or math.type(v.n) ~= "integer" or v.n < 1 then
    error("runtime: keep_best must be {metric = name, n = count >= 1 [, mode = \"max\"|\"min\"] [, expert = name]}",
          level)
  end
  for k in pairs(v) do
    if k ~= "metric" and k ~= "n" and k ~= "mode" and k ~= "expert" then
      error(("runtime: keep_best: unknown field '%s'"):format(tostring(k)), level)
    end
  end
  local mode = v.mode or "max"
  if mode ~= "max" and mode ~= "min" then
    error(("runtime: keep_best.mode must be \"max\" or \"min\", got '%s'"):format(tostring(v.mode)), level)
  end
  if v.expert ~= nil then
    if not experts[v.expert] then
      error(("runtime: keep_best.expert: unknown expert '%s'"):format(tostring(v.expert)), level)
    end
    if not R.EXPERT_METRICS[v.metric] then
      error(("runtime: keep_best: unknown metric '%s' (an expert's state has %s)")
            :format(v.metric, names(R.EXPERT_METRICS)), level)
    end
  elseif not R.GLOBAL_METRICS[v.metric] then
    error(("runtime: keep_best: unknown metric '%s' (global metrics are %s; "
           .. "with expert = name, %s)"):format(v.metric, names(R.GLOBAL_METRICS), names(R.EXPERT_METRICS)),
          level)
  end
  return { metric = v.metric, n = v.n, mode = mode, expert = v.expert }
end

function R.check_keep_every_hours(v, level)
  if v == false then return false end
  if type(v) ~= "number" or not (v > 0 and v < 1e6) then
    error("runtime: keep_every_hours must be a number of hours > 0 (or false)", level)
  end
  return v
end

local function metric_of(cp, kb)
  local m
  if kb.expert then
    for _, st in ipairs(cp.expert_states or {}) do
      if st.expert_id == kb.expert then m = st[kb.metric] end
    end
  else
    m = cp.metadata and type(cp.metadata) == "table" and cp.metadata[kb.metric]
    if m == nil and cp.global_metrics then m = cp.global_metrics[kb.metric] end
  end
  m = tonumber(m)
  if m == nil or m ~= m then return nil end
  return m
end

local function saved_at(cp)
  local t = type(cp.metadata) == "table" and tonumber(cp.metadata.saved_at)
  return t or cp.created_at or 0
end

-- Ids (oldest first) with their records; nil, message if one cannot be read.
function R.checkpoints(store)
  local ids, err = store:list_checkpoints()
  if not ids then return nil, err end
  local list = {}
  for i, id in ipairs(ids) do
    local cp, cerr = store:get_checkpoint(id)
    if not cp then return nil, cerr or ("checkpoint " .. id .. " vanished") end
    list[i] = { id = id, cp = cp, i = i }
  end
  return list
end

-- The ids that retention keeps, as a set.
function R.kept(list, config)
  local keep = {}
  for i = math.max(1, #list - config.max_checkpoints + 1), #list do keep[list[i].id] = true end
  local kb = config.keep_best
  if kb then
    local scored = {}
    for _, c in ipairs(list) do
      scored[#scored + 1] = { id = c.id, score = metric_of(c.cp, kb), i = c.i }
    end
    local better = kb.mode == "min" and function(a, b) return a < b end or function(a, b) return a > b end
    table.sort(scored, function(a, b)
      if (a.score == nil) ~= (b.score == nil) then return a.score ~= nil end
      if a.score ~= nil and a.score ~= b.score then return better(a.score, b.score) end
      return a.i > b.i     -- ties: the newer
    end)
    for i = 1, math.min(kb.n, #scored) do
      if scored[i].score ~= nil then keep[scored[i].id] = true end
    end
  end
  local hours = config.keep_every_hours
  if hours then
    local anchor
    for _, c in ipairs(list) do
      local t = saved_at(c.cp)
      if anchor == nil or t >= anchor + hours * 3600 then
        keep[c.id], anchor = true, t
      end
    end
  end
  return keep
end

-- Delete what retention does not keep; returns how many, or nil, message.
function R.enforce(store, config)
  local list, err = R.checkpoints(store)
  if not list then return nil, err end
  local keep, deleted = R.kept(list, config), 0
  for _, c in ipairs(list) do
    if not keep[c.id] then
      local ok, derr = store:delete_checkpoint(c.id)
      if not ok then return nil, derr end
      deleted = deleted + 1
    end
  end
  return deleted
end

-- The newest checkpoint saved with this step, or nil.
function R.find_step(list, step)
  for i = #list, 1, -1 do
    if list[i].cp.step == step then return list[i].id end
  end
  return nil
end

-- Every step that has a checkpoint, ascending.
function R.steps(list)
  local seen, steps = {}, {}
  for _, c in ipairs(list) do
    local s = c.cp.step
    if s and not seen[s] then seen[s] = true; steps[#steps + 1] = s end
  end
  table.sort(steps)
  return steps
end

-- The runtime's save_state, latest_step and all_steps; rt gives the
-- runtime's check_open, measure and success_rate (of its counters).
function R.install(Runtime, rt)
  -- save_state's argument: a system_version string, a step, or a table of both.
  local function save_options(arg)
    local opts = arg
    if type(arg) == "string" then opts = { system_version = arg }
    elseif math.type(arg) == "integer" then opts = { step = arg }
    elseif arg == nil then opts = {}
    elseif type(arg) ~= "table" then
      error("save_state: expected a system_version string, a step or {system_version=, step=}", 3)
    end
    for k in pairs(opts) do
      if k ~= "system_version" and k ~= "step" then
        error(("save_state: unknown option '%s'"):format(tostring(k)), 3)
      end
    end
    if opts.system_version ~= nil and type(opts.system_version) ~= "string" then
      error("save_state: system_version must be a string", 3)
    end
    if opts.step ~= nil and (math.type(opts.step) ~= "integer" or opts.step < 0) then
      error("save_state: step must be an integer >= 0", 3)
    end
    return opts
  end

  function Runtime:save_state(arg)
    rt.check_open(self)
    local opts = save_options(arg)
    if opts.step then
      local list, lerr = R.checkpoints(self.store)
      if not list then return nil, lerr end
      if R.find_step(list, opts.step) then
        error(("save_state: a checkpoint for step %d exists"):format(opts.step), 2)
      end
    end
    local ok, err = self:flush()
    if not ok then return nil, err end
    local states, global = rt.measure(self)
    local ctr = self.counters
    local id, cerr = self.store:create_checkpoint {
      system_version = opts.system_version or core.version, step = opts.step,
      expert_states = states, global_metrics = global,
      metadata = { success_rate = rt.success_rate(ctr), counters = ctr,
                   saved_at = self.clock() },
    }
    if not id then return nil, cerr end
    local rok, rerr = R.enforce(self.store, self.config)
    if not rok then return nil, rerr end
    return id
  end

  --- The highest step that has a checkpoint, or nil.
  function Runtime:latest_step()
    rt.check_open(self)
    local list, err = R.checkpoints(self.store)
    if not list then return nil, err end
    local steps = R.steps(list)
    return steps[#steps]
  end

  --- Every step that has a checkpoint, ascending.
  function Runtime:all_steps()
    rt.check_open(self)
    local list, err = R.checkpoints(self.store)
    if not list then return nil, err end
    return R.steps(list)
  end
end

return R
