-- A network simulator for transport-free sync engines: N stores, each with
-- its engine, exchanging messages through a lossy, duplicating, reordering
-- network that can be partitioned. Time is virtual (engine:tick(t)); the
-- simulator carries every byte itself. Used by spec/41 and bench/sync_bench.
local synaptic = require "synaptic"

local sim = {}
sim.__index = sim

-- A small deterministic PRNG, so a failing run can be replayed by seed.
local function rng(seed)
  local s = seed % 2147483647
  if s <= 0 then s = s + 2147483646 end
  return function(n)
    s = (s * 48271) % 2147483647
    if n then return s % n + 1 end
    return s / 2147483647
  end
end

--- opts: n, dir (a directory to create stores in), seed, loss, dup, delay
-- (max extra steps a message may wait, which reorders), degree (random
-- extra peers per node besides ring neighbours), config (p2p config),
-- store (more options for synaptic.open).
function sim.new(opts)
  local self = setmetatable({}, sim)
  self.n = opts.n
  self.rand = rng(opts.seed or 1)
  self.loss = opts.loss or 0
  self.dup = opts.dup or 0
  self.delay = opts.delay or 0
  self.t = 0
  self.nodes = {}
  self.inflight = {}
  self.cut = nil            -- partition: node index -> side
  self.delivered, self.dropped, self.bytes = 0, 0, 0
  local base = opts.config or {}
  for i = 1, self.n do
    local so = { write_buffer_mb = 1, cache_mb = 1 }
    for k, v in pairs(opts.store or {}) do so[k] = v end
    local store = assert(synaptic.open(("%s/node%03d"):format(opts.dir, i), so))
    local cfg = { node_id = "n" .. i }
    for k, v in pairs(base) do cfg[k] = v end
    self.nodes[i] = { id = "n" .. i, store = store, engine = synaptic.sync_engine(store, cfg) }
  end
  -- a ring (connected whatever the chords) plus random chords
  local function link(i, j)
    if i == j then return end
    self.nodes[i].engine:add_peer("n" .. j)
    self.nodes[j].engine:add_peer("n" .. i)
  end
  for i = 1, self.n do
    if self.n > 1 then link(i, i % self.n + 1) end
    for _ = 1, (opts.degree or 2) do link(i, self.rand(self.n)) end
  end
  return self
end

function sim:index(id) return tonumber(id:sub(2)) end

function sim:partition(side_of) self.cut = side_of end
function sim:heal() self.cut = nil end

local function separated(self, a, b)
  return self.cut ~= nil and self.cut(a) ~= self.cut(b)
end

--- One step of virtual time: every engine ticks, then every message due
-- now is delivered (in a shuffled order).
function sim:step(dt)
  self.t = self.t + (dt or 1)
  for i, node in ipairs(self.nodes) do
    assert(node.engine:tick(self.t))
    self:collect(i)
  end
  local due, later = {}, {}
  for _, m in ipairs(self.inflight) do
    if m.at <= self.t then due[#due + 1] = m else later[#later + 1] = m end
  end
  self.inflight = later
  for i = #due, 2, -1 do
    local j = self.rand(i)
    due[i], due[j] = due[j], due[i]
  end
  for _, m in ipairs(due) do
    local to = self.nodes[m.to]
    to.engine:receive(self.nodes[m.from].id, m.bytes)
    self.delivered = self.delivered + 1
    self:collect(m.to)
  end
end

function sim:collect(i)
  for _, m in ipairs(self.nodes[i].engine:outbox()) do
    local to = self:index(m.to)
    self.bytes = self.bytes + #m.bytes
    if separated(self, i, to) or self.rand() < self.loss then
      self.dropped = self.dropped + 1
    else
      local copies = self.rand() < self.dup and 2 or 1
      for _ = 1, copies do
        self.inflight[#self.inflight + 1] = {
          from = i, to = to, bytes = m.bytes, at = self.t + (self.delay > 0 and self.rand(self.delay + 1) - 1 or 0),
        }
      end
    end
  end
end

--- True when every node has the same version vector digest.
function sim:agreed()
  local d = self.nodes[1].engine:digest()
  for i = 2, self.n do
    if self.nodes[i].engine:digest() ~= d then return false end
  end
  return true
end

--- Step until agreement (or max_steps); returns the steps taken, or nil.
function sim:run_until_agreed(max_steps)
  for s = 1, max_steps do
    self:step()
    if self:agreed() then return s end
  end
  return nil
end

-- A canonical string of a Lua value (sorted keys), for comparing configs.
local function canon(v)
  if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. "=" .. canon(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
sim.canon = canon

--- Everything replicated in a store, as one string: current weights bytes
-- and identity for every expert/layer given, their version lists and
-- conflicts, configs and their conflicts, and the checkpoint list. With
-- trimmed = true the version lists are left out: which old records a store
-- still holds is its own (max_weight_versions, the merge window).
function sim.fingerprint(store, experts, layers, trimmed)
  local out = {}
  for _, x in ipairs(experts) do
    for l = 0, layers - 1 do
      local w, b, info = store:get_weights(x, l)
      if w then
        out[#out + 1] = ("%s/%d v%d %d %s %s %s"):format(x, l, info.version, info.hlc, info.origin,
                                                        w:tobytes(), b:tobytes())
      end
      if not trimmed then out[#out + 1] = table.concat(store:weight_versions(x, l), ",") end
      for _, c in ipairs(store:conflicts(x, l)) do
        out[#out + 1] = ("conflict v%d %d %s %s"):format(c.version, c.hlc, c.origin, c.weights:tobytes())
      end
    end
    out[#out + 1] = canon(store:get_config(x))
    out[#out + 1] = canon(store:conflicts(x))
  end
  for _, id in ipairs(store:list_checkpoints()) do
    out[#out + 1] = id .. canon(store:get_checkpoint(id))
  end
  return table.concat(out, "\n")
end

function sim:close()
  for _, node in ipairs(self.nodes) do
    node.engine:close()
    node.store:close()
  end
end

return sim
