--- The persistent micro-expert runtime and its persistence manager.
-- Six domain experts (float32 MLPs in C) and a learned gate route text
-- queries; every weight change is tracked per layer and flushed to the
-- store on an interval, on save_state and on close.
local core = require "synaptic.core"
local sync = require "synaptic.runtime_sync"
local retention = require "synaptic.runtime_checkpoints"

local M = {}

-- Domain order matches the C cue scorer (synaptic.cue_scores).
M.EXPERTS = {
  { name = "reasoning",   sizes = { 64, 128, 64, 32 } },
  { name = "coding",      sizes = { 96, 192, 128, 64 } },
  { name = "language",    sizes = { 128, 256, 128, 64 } },
  { name = "mathematics", sizes = { 80, 160, 80, 40 } },
  { name = "tool_use",    sizes = { 48, 96, 48, 24 } },
  { name = "context",     sizes = { 32, 64, 32, 16 } },
}
local GATE_ID, GATE_SIZES = "router", { 64, #M.EXPERTS }
-- system_state is replicated, last writer wins per key: each store keeps
-- its runtime's counters under its own origin, so peers' do not replace
-- them (the key without one is what earlier releases wrote, read once)
local COUNTERS_KEY = "runtime.counters"
local CUE_WEIGHT = 2.0     -- keyword cues count as much as two logits of gate
local TOP_K = 2

local check_config = require("synaptic.runtime_config").check

local Runtime = {}
Runtime.__index = Runtime
Runtime.__name = "synaptic.runtime"

local function check_open(rt)
  if getmetatable(rt) ~= Runtime then error("expected a synaptic.runtime", 3) end
  if not rt.store then error("attempt to use a closed runtime", 3) end
end

-- The config's clock: user code, which may even close the runtime.
local function now(rt)
  local t = rt.clock()
  if not rt.store then error("attempt to use a closed runtime (its clock closed it)", 0) end
  if type(t) ~= "number" then error("runtime: clock must return a number, not a " .. type(t), 0) end
  return t
end

-- ---- loading and saving -------------------------------------------------------

local function persist_net(batch, id, domain, net, lr)
  local sizes = net:sizes()
  for layer = 1, #sizes - 1 do
    local w, b = net:get_layer(layer)
    batch:put_weights(id, layer, w, b, { shape = { sizes[layer + 1], sizes[layer] } })
  end
  batch:put_config { expert_id = id, domain = domain, parameter_count = net:parameter_count(),
                     learning_rate = lr, architecture = sizes }
end

local function load_net(rt, id, sizes, seed)
  local cfg = rt.store:get_config(id)
  local net = core.mlp(sizes, seed)
  if not cfg then return net, false end
  sync.read_layers(rt, id, net)
  return net, true
end

local function remember_net(rt, id, net)
  for layer = 1, net:layer_count() do
    local w, b = net:get_layer(layer)
    sync.remember(rt, id, layer, w, b)
  end
end

local function new_counters()
  local c = { total_requests = 0, total_latency = 0, feedback = 0, correct = 0, experts = {} }
  for _, e in ipairs(M.EXPERTS) do
    c.experts[e.name] = { activation_count = 0, feedback = 0, correct = 0, last_updated = 0 }
  end
  return c
end

function M.open(path, config)
  if type(path) ~= "string" then error("runtime: path must be a string", 2) end
  local c = check_config(config, M.EXPERTS)
  local store, err = core.open(path, { compression = c.compression_enabled,
                                       max_weight_versions = c.max_weight_versions })
  if not store then return nil, err end
  local rt = setmetatable({ store = store, config = c, path = path, clock = c.clock,
                            experts = {}, inputs = {}, order = {}, seen = {},
                            gate_id = GATE_ID, taken_up = 0, refused = {} }, Runtime)
  local ok, e = pcall(function()
    local fresh = {}
    for i, spec in ipairs(M.EXPERTS) do
      local net, found = load_net(rt, spec.name, spec.sizes, c.seed + i)
      rt.experts[spec.name] = net
      rt.inputs[spec.name] = spec.sizes[1]
      rt.order[i] = spec.name
      if not found then fresh[#fresh + 1] = i end
    end
    local gate, found = load_net(rt, GATE_ID, GATE_SIZES, c.seed)
    rt.gate = gate
    if #fresh > 0 or not found then
      assert(store:batch(function(b)
        for _, i in ipairs(fresh) do
          local spec = M.EXPERTS[i]
          persist_net(b, spec.name, spec.name, rt.experts[spec.name], c.learning_rate)
        end
        if not found then persist_net(b, GATE_ID, "router", gate, c.learning_rate) end
      end))
      for _, i in ipairs(fresh) do remember_net(rt, M.EXPERTS[i].name, rt.experts[M.EXPERTS[i].name]) end
      if not found then remember_net(rt, GATE_ID, gate) end
      for _, net in pairs(rt.experts) do net:mark_clean() end
      gate:mark_clean()
    end
    rt.counters_key = COUNTERS_KEY .. "/" .. store:origin()
    rt.counters = store:get_state(rt.counters_key) or store:get_state(COUNTERS_KEY) or new_counters()
    rt.epoch = store:weights_epoch()
    if c.sync_with_peers then assert(rt:enable_p2p_sync(c.p2p)) end
  end)
  if not ok then
    store:close()
    return nil, tostring(e)
  end
  rt.started = now(rt)
  rt.last_save = rt.started
  rt.counters_dirty = false
  return rt
end

-- Write every dirty layer (and the counters unless layers_only) in one
-- atomic batch. Peers' writes the store applied meanwhile are taken up
-- first, so each write is a child of what the store holds now.
local function write_dirty(rt, layers_only)
  local tok, terr = pcall(sync.take_up, rt)
  if not tok then return nil, tostring(terr) end
  local written = {}
  local function collect(id, net)
    for _, layer in ipairs(net:dirty_layers()) do
      local w, bias = net:get_layer(layer)
      written[#written + 1] = { id = id, net = net, layer = layer, w = w, b = bias }
    end
  end
  for _, name in ipairs(rt.order) do collect(name, rt.experts[name]) end
  collect(GATE_ID, rt.gate)
  local counters = rt.counters_dirty and not layers_only
  if #written == 0 and not counters then return 0 end
  local ok, err = rt.store:batch(function(b)
    for _, x in ipairs(written) do
      local sizes = x.net:sizes()
      -- the runtime read the current write (a merge, maybe) and trained on it
      b:put_weights(x.id, x.layer, x.w, x.b, { shape = { sizes[x.layer + 1], sizes[x.layer] },
                                               build_on_merge = true })
    end
    if counters then b:put_state(rt.counters_key, rt.counters) end
  end)
  if not ok then return nil, err end
  for _, x in ipairs(written) do
    x.net:mark_clean(x.layer)
    sync.remember(rt, x.id, x.layer, x.w, x.b)
  end
  rt.epoch = rt.store:weights_epoch()
  if counters then rt.counters_dirty = false end
  return #written
end

--- Write every dirty layer and the counters in one atomic batch.
function Runtime:flush()
  check_open(self)
  local n, err = write_dirty(self, false)
  if not n then return nil, err end
  self.last_save = now(self)
  return n
end

local function maybe_autosave(rt)
  if now(rt) - rt.last_save >= rt.config.auto_save_interval then
    assert(rt:flush())
  end
end

-- ---- processing ---------------------------------------------------------------

-- fn: the public method that was called, named in the message
local function check_query(query, fn)
  if type(query) ~= "string" then error(fn .. ": query must be a string", 3) end
  if #query == 0 then error(fn .. ": query must not be empty", 3) end
  if #query > 65536 then error(fn .. ": query longer than 65536 bytes", 3) end
end

local function softmax(x)
  local m = -math.huge
  for i = 1, #x do if x[i] > m then m = x[i] end end
  local s, p = 0, {}
  for i = 1, #x do p[i] = math.exp(x[i] - m); s = s + p[i] end
  for i = 1, #x do p[i] = p[i] / s end
  return p
end

-- Keyword cues as a fixed prior added to the gate's logits.
local function cue_offset(rt, query)
  local cues, offset = core.cue_scores(query), {}
  for i, name in ipairs(rt.order) do offset[i] = CUE_WEIGHT * (cues[name] or 0) end
  return offset
end

--- Domain probabilities for a query: learned gate logits plus keyword cues.
function Runtime:route(query)
  check_open(self)
  check_query(query, "route")
  sync.take_up(self)
  local logits = self.gate:forward(core.features(query, GATE_SIZES[1]))
  local offset = cue_offset(self, query)
  local scores = {}
  for i = 1, #offset do scores[i] = logits[i] + offset[i] end
  local p = softmax(scores)
  -- rank by probability, ties by domain order (deterministic)
  local ranked = {}
  for i = 1, #p do
    local j = i
    while j > 1 and p[ranked[j - 1]] < p[i] do ranked[j] = ranked[j - 1]; j = j - 1 end
    ranked[j] = i
  end
  return p, ranked
end

-- An expert's answer: its confidence and its three strongest outputs (one
-- pass, no sort: this runs twice per query).
local function expert_answer(net, query, inputs)
  local y = net:forward(core.features(query, inputs))
  local sum, a, b, c = 0, 0, 0, 0
  local ya, yb, yc = -math.huge, -math.huge, -math.huge
  for i = 1, #y do
    local v = y[i]
    sum = sum + v
    if v > ya then a, b, c, ya, yb, yc = i, a, b, v, ya, yb
    elseif v > yb then b, c, yb, yc = i, b, v, yb
    elseif v > yc then c, yc = i, v end
  end
  local confidence = 1 / (1 + math.exp(-sum / #y * 4))
  return confidence, a, b, c
end

function Runtime:process(query)
  check_open(self)
  check_query(query, "process")
  local t0 = core.now()
  local p, ranked = self:route(query)
  local parts, details = {}, { domains = {}, experts = {} }
  for k = 1, TOP_K do
    local name = self.order[ranked[k]]
    local confidence, a, b, c = expert_answer(self.experts[name], query, self.inputs[name])
    details.domains[k] = name
    details.experts[name] = { confidence = confidence, relevance = p[ranked[k]] }
    parts[k] = ("%s expert (relevance %.3f, confidence %.3f): strongest patterns #%d #%d #%d")
               :format(name, p[ranked[k]], confidence, a, b, c)
    local ec = self.counters.experts[name]
    ec.activation_count = ec.activation_count + 1
  end
  local latency = core.now() - t0
  details.latency = latency
  local ctr = self.counters
  ctr.total_requests = ctr.total_requests + 1
  ctr.total_latency = ctr.total_latency + latency
  self.counters_dirty = true
  maybe_autosave(self)
  return table.concat(parts, "; "), details
end

--- One SGD step toward routing `query` to `domain`; returns the gate's loss.
function Runtime:train(query, domain)
  check_open(self)
  check_query(query, "train")
  local idx
  for i, name in ipairs(self.order) do if name == domain then idx = i end end
  if not idx then error(("train: unknown domain '%s'"):format(tostring(domain)), 2) end
  local _, ranked = self:route(query)
  local ctr, ec = self.counters, self.counters.experts[domain]
  ctr.feedback, ec.feedback = ctr.feedback + 1, ec.feedback + 1
  if ranked[1] == idx then ctr.correct, ec.correct = ctr.correct + 1, ec.correct + 1 end
  local lr = self.config.learning_rate
  -- the gate learns on top of the cue prior, so it can overrule the cues
  local loss = self.gate:train(core.features(query, GATE_SIZES[1]), idx, lr, "softmax_ce",
                               cue_offset(self, query))
  -- the chosen expert learns to answer its own domain with more confidence
  local net = self.experts[domain]
  local sizes = net:sizes()
  local target = {}
  for i = 1, sizes[#sizes] do target[i] = 1 end
  net:train(core.features(query, sizes[1]), target, lr * 0.1, "mse")
  ec.last_updated = core.now()
  self.counters_dirty = true
  maybe_autosave(self)
  return loss
end

-- ---- checkpoints ------------------------------------------------------------------

local function success_rate(correct, feedback)
  if feedback == 0 then return 0 end
  return correct / feedback
end

local function weight_bytes(net)
  return net:parameter_count() * 4
end

local function measure(rt)
  local ctr = rt.counters
  local states, memory = {}, weight_bytes(rt.gate)
  for _, name in ipairs(rt.order) do
    local ec, net = ctr.experts[name], rt.experts[name]
    memory = memory + weight_bytes(net)
    states[#states + 1] = {
      expert_id = name, activation_count = ec.activation_count,
      success_rate = success_rate(ec.correct, ec.feedback),
      last_updated = ec.last_updated, memory_usage = weight_bytes(net),
    }
  end
  local disk = rt.store:size_info()
  return states, {
    total_requests = ctr.total_requests,
    average_response_time = ctr.total_requests > 0 and ctr.total_latency / ctr.total_requests or 0,
    memory_usage = memory, disk_usage = disk or 0, uptime = now(rt) - rt.started,
  }
end

retention.install(Runtime, {
  check_open = check_open, measure = measure,
  success_rate = function(ctr) return success_rate(ctr.correct, ctr.feedback) end,
})

function Runtime:list_checkpoints()
  check_open(self)
  return self.store:list_checkpoints()
end

--- Make a checkpoint's weights current again, for all experts or those listed.
function Runtime:restore_state(id, experts)
  check_open(self)
  if math.type(id) == "integer" then
    local list, lerr = retention.checkpoints(self.store)
    if not list then return nil, lerr end
    local found = retention.find_step(list, id)
    if not found then return nil, ("no checkpoint for step %d"):format(id) end
    id = found
  elseif type(id) ~= "string" or id == "" then
    error("restore_state: expected a checkpoint id (a non-empty string) or a step", 2)
  end
  local chosen
  if experts ~= nil then
    if type(experts) ~= "table" then error("restore_state: experts must be a list of names", 2) end
    chosen = {}
    for _, name in ipairs(experts) do
      if not self.experts[name] and name ~= GATE_ID then
        error(("restore_state: unknown expert '%s'"):format(tostring(name)), 2)
      end
      chosen[name] = true
    end
  end
  local cp, err = self.store:get_checkpoint(id)
  if not cp then return nil, err or ("no checkpoint '" .. id .. "'") end
  local ok, ferr = self:flush()   -- unsaved training is kept in history, not lost
  if not ok then return nil, ferr end
  local restored = {}
  local bok, berr = self.store:batch(function(b)
    for _, pin in ipairs(cp.pins or {}) do
      local name = pin.expert_id
      local net = name == GATE_ID and self.gate or self.experts[name]
      if net and (not chosen or chosen[name]) then
        -- by identity: version numbers shift when concurrent writes arrive
        local at = pin.origin and { hlc = pin.hlc, origin = pin.origin } or pin.version
        local w, bias, info = self.store:get_weights(name, pin.layer, at)
        if not w then error(("pinned weights %s layer %d v%d are missing"):format(name, pin.layer, pin.version), 0) end
        if not sync.refused(self, name, net, pin.layer, w, bias, info) then
          b:put_weights(name, pin.layer, w, bias, { shape = info.shape })
          restored[#restored + 1] = { id = name, net = net, layer = pin.layer, w = w, b = bias }
        end
      end
    end
  end)
  if not bok then return nil, berr end
  for _, r in ipairs(restored) do
    r.net:set_layer(r.layer, r.w, r.b)
    r.net:mark_clean(r.layer)
    sync.remember(self, r.id, r.layer, r.w, r.b)
  end
  self.epoch = self.store:weights_epoch()
  local saved = cp.metadata and cp.metadata.counters
  if saved then
    for name, ec in pairs(saved.experts or {}) do
      if self.counters.experts[name] and (not chosen or chosen[name]) then
        self.counters.experts[name] = ec
      end
    end
    self.counters_dirty = true
  end
  return true
end

-- ---- maintenance --------------------------------------------------------------------

function Runtime:create_backup(dir)
  check_open(self)
  if type(dir) ~= "string" then error("create_backup: dir must be a string", 2) end
  if not self.config.backup_enabled then
    return nil, "create_backup: backups are disabled (backup_enabled = false)"
  end
  local ok, err = self:flush()
  if not ok then return nil, err end
  local id, berr = self.store:backup(dir)
  if not id then return nil, berr end
  return dir, id
end

function Runtime:verify_integrity()
  check_open(self)
  return self.store:verify()
end

function Runtime:compact_storage()
  check_open(self)
  return self.store:compact()
end

local function human(bytes)
  local units, u = { "B", "KiB", "MiB", "GiB", "TiB" }, 1
  while bytes >= 1024 and u < #units do bytes, u = bytes / 1024, u + 1 end
  return u == 1 and ("%d %s"):format(bytes, units[u]) or ("%.2f %s"):format(bytes, units[u])
end

local Stats = {}
Stats.__name = "synaptic.runtime_stats"
Stats.__tostring = function(s)
  local lines = {
    ("synaptic runtime: %d requests, average response %.3f ms, uptime %.1f s")
      :format(s.total_requests, s.average_response_time * 1000, s.uptime),
    ("success rate %.1f%% over %d feedback steps; %d checkpoints")
      :format(100 * s.success_rate, s.feedback, s.checkpoint_count),
    ("weights %s in memory; store %s on disk in %d files (stored/raw %.2f)")
      :format(human(s.memory_usage), s.storage_stats.human_size, s.storage_stats.file_count,
              s.storage_stats.compression_ratio),
  }
  local y = s.sync
  if y then
    lines[#lines + 1] = ("sync: weights %d sent / %d received, configs %d / %d, checkpoints %d / %d, "
                         .. "state %d / %d, metrics %d / %d, %d conflicts, %d rejected")
      :format(y.weights_sent, y.weights_received, y.configs_sent, y.configs_received, y.checkpoints_sent,
              y.checkpoints_received, y.states_sent, y.states_received, y.metrics_sent, y.metrics_received,
              y.conflicts, y.rejected)
  end
  for _, name in ipairs(s.expert_order) do
    local e = s.experts[name]
    lines[#lines + 1] = ("  %-12s %7d activations  success %5.1f%%  %s")
      :format(name, e.activation_count, 100 * e.success_rate, human(e.memory_usage))
  end
  for _, r in ipairs(s.refused) do
    lines[#lines + 1] = ("  refused %s layer %d v%s from %s: %s")
      :format(r.expert_id, r.layer, tostring(r.version), tostring(r.origin), r.reason)
  end
  return table.concat(lines, "\n")
end

function Runtime:stats()
  check_open(self)
  local states, global = measure(self)
  local st = assert(self.store:storage_stats())
  local s = setmetatable({
    total_requests = global.total_requests, average_response_time = global.average_response_time,
    uptime = global.uptime, memory_usage = global.memory_usage, disk_usage = global.disk_usage,
    checkpoint_count = st.checkpoint_count, storage_stats = st,
    success_rate = success_rate(self.counters.correct, self.counters.feedback),
    feedback = self.counters.feedback, experts = {}, expert_order = self.order, refused = {},
  }, Stats)
  for _, e in ipairs(states) do s.experts[e.expert_id] = e end
  if self.p2p_node then s.sync = self.p2p_node:stats() end
  for _, r in pairs(self.refused) do s.refused[#s.refused + 1] = r end
  table.sort(s.refused, function(a, b) return a.expert_id .. "/" .. a.layer < b.expert_id .. "/" .. b.layer end)
  return s
end

--- Load the store's current weights into every expert and the gate: after
-- a peer's weights arrived, or another process wrote the store. Unsaved
-- local training is flushed first, so it stays in the history.
function Runtime:reload()
  check_open(self)
  local ok, err = self:flush()
  if not ok then return nil, err end
  local rok, rerr = pcall(function()
    for name, net in pairs(self.experts) do sync.read_layers(self, name, net) end
    sync.read_layers(self, GATE_ID, self.gate)
  end)
  if not rok then return nil, tostring(rerr) end
  self.epoch = self.store:weights_epoch()
  return true
end

--- A P2P node sharing this runtime's store (conflict_resolution "merge"
-- unless the config says otherwise): its trained weights spread to peers,
-- and the weights peers' updates make current are taken up at the next
-- process/train/poll.
function Runtime:enable_p2p_sync(config)
  check_open(self)
  if self.p2p_node then error("enable_p2p_sync: this runtime already has a node", 2) end
  local node, err = require("synaptic.p2p").node(self.store, sync.checked_config(config, 2, self.config.merge_rule))
  if not node then return nil, err end
  self.p2p_node = node
  return node
end

--- The runtime's node (enable_p2p_sync, or sync_with_peers at open), or nil.
function Runtime:node()
  check_open(self)
  return self.p2p_node
end

--- Write unsaved layers (so peers get them), poll the node for up to
-- timeout_ms, and take up what arrived; returns how many layers changed.
function Runtime:poll(timeout_ms)
  check_open(self)
  if timeout_ms ~= nil and (type(timeout_ms) ~= "number" or timeout_ms ~= timeout_ms
                            or timeout_ms < 0 or timeout_ms > 3600000) then
    error("poll: timeout_ms must be a number from 0 to 3600000", 2)
  end
  local before = self.taken_up or 0
  local n, err = write_dirty(self, true)
  if not n then return nil, err end
  if self.p2p_node then
    local ok, perr = self.p2p_node:poll(math.floor(timeout_ms or 0))
    if not ok then return nil, perr end
  end
  local tok, terr = pcall(sync.take_up, self)
  if not tok then return nil, tostring(terr) end
  return (self.taken_up or 0) - before
end

function Runtime:close()
  if getmetatable(self) ~= Runtime then error("expected a synaptic.runtime", 2) end
  if not self.store or self.closing then return true end
  self.closing = true   -- its own flush runs the clock, which may call close again
  local ok, err = self:flush()
  if self.p2p_node then self.p2p_node:close(); self.p2p_node = nil end
  self.store:close()
  self.store = nil
  if not ok then return nil, err end
  return true
end

Runtime.__close = function(self) self:close() end
Runtime.__gc = function(self) if self.store then pcall(self.close, self) end end
Runtime.__tostring = function(self)
  if not self.store then return "synaptic.runtime (closed)" end
  return ("synaptic.runtime (%s, %d experts, %d requests)")
         :format(self.path, #self.order, self.counters.total_requests)
end

return M
