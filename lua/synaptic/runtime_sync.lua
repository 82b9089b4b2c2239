--- The runtime's side of a live mesh: which weights it has built on, and
-- taking up what peers' updates made current in the store.
--
-- For every layer the runtime remembers the store write it last loaded or
-- wrote (its identity, hlc and origin) and that write's weights, the base
-- its in-memory training is on top of. A store-level counter
-- (store:weights_epoch(), bumped by every commit that changes a layer's
-- current write, local or replicated) tells cheaply whether anything
-- changed; only then is each layer's current identity compared (an index
-- read, no payload), and only the layers that changed are read.
--
-- A changed layer that has no unsaved training is simply loaded. One that
-- has (the user polled the node directly, between two training steps) is
-- rebased: current + (in-memory - base), so the local steps are kept on
-- top of what peers did, and the next flush writes it as a child of the
-- current heads. For one concurrent peer write that is the very sum the
-- store's merge makes (base + (mine - base) + (theirs - base)); it needs no
-- resolver in the store and no change to the causal model. rt:poll flushes
-- unsaved layers before it polls, so there the store's own merge combines
-- them and the rebase is not needed.
local core = require "synaptic.core"

local S = {}

-- layer -> { hlc =, origin =, w =, b = } for one net id, created on demand.
local function seen_of(rt, id)
  local t = rt.seen[id]
  if not t then t = {}; rt.seen[id] = t end
  return t
end

--- Remember that the layer's in-memory base is the store's current write,
-- with weights w, b (floats the caller no longer changes).
function S.remember(rt, id, layer, w, b)
  local hlc, origin = rt.store:current_identity(id, layer)
  seen_of(rt, id)[layer] = { hlc = hlc, origin = origin, w = w, b = b }
  rt.refused[id .. "/" .. layer] = nil
end

-- cur + (mine - base), elementwise, as a new floats array.
local function rebase(cur, mine, base)
  local n = #cur
  if #mine ~= n or #base ~= n then return nil end
  local out = core.floats(n)
  for i = 1, n do out[i] = cur[i] + (mine[i] - base[i]) end
  return out
end

-- nil when w, b fit the net's layer, else why not (a peer may write any
-- shape: the store keeps what it is given, the runtime refuses to load it).
local function misfit(net, layer, w, b)
  local rows, cols = net:layer_shape(layer)
  if #w == rows * cols and #b == rows then return nil end
  return ("has %d weights and %d biases, not %d and %d"):format(#w, #b, rows * cols, rows)
end

-- A write the runtime will not load: named in rt:stats().refused until the
-- layer's current write fits again. At most one per layer, so it is bounded.
local function refuse(rt, id, layer, info, why)
  rt.refused[id .. "/" .. layer] = { expert_id = id, layer = layer, hlc = info.hlc,
                                     origin = info.origin, version = info.version, reason = why }
end

local function accept(rt, id, layer, info, w, b)
  rt.refused[id .. "/" .. layer] = nil
  seen_of(rt, id)[layer] = { hlc = info.hlc, origin = info.origin, w = w, b = b }
end

-- The newest earlier version of the layer that fits, or nil.
local function newest_fitting(rt, id, net, layer, current)
  local versions = rt.store:weight_versions(id, layer) or {}
  for i = #versions, 1, -1 do
    if versions[i] ~= current then
      local w, b, info = rt.store:get_weights(id, layer, versions[i])
      if w and not misfit(net, layer, w, b) then return w, b, info end
    end
  end
end

--- Set every layer of net from the store's current writes (at open and
-- reload). A current write of the wrong shape is refused: the layer keeps
-- its newest fitting version, or what the net holds (its seed at open).
function S.read_layers(rt, id, net)
  for layer = 1, net:layer_count() do
    local w, b, info = rt.store:get_weights(id, layer)
    if not w then
      error(("runtime: no readable weights for %s layer %d%s"):format(id, layer,
            b and (": " .. b) or ""), 0)
    end
    local why = misfit(net, layer, w, b)
    if why then
      refuse(rt, id, layer, info, why)
      local fw, fb = newest_fitting(rt, id, net, layer, info.version)
      if fw then net:set_layer(layer, fw, fb) end
      local mw, mb = net:get_layer(layer)
      -- the refused write is what was seen: it is not read again until it changes
      seen_of(rt, id)[layer] = { hlc = info.hlc, origin = info.origin, w = mw, b = mb }
    else
      net:set_layer(layer, w, b)
      accept(rt, id, layer, info, w, b)
    end
  end
  net:mark_clean()
end

--- nil when w, b fit the layer; else records the refusal and says why.
function S.refused(rt, id, net, layer, w, b, info)
  local why = misfit(net, layer, w, b)
  if why then refuse(rt, id, layer, info, why) end
  return why
end

local function take_up_layer(rt, id, net, layer, dirty)
  local w, b, info = rt.store:get_weights(id, layer)
  if not w then
    error(("runtime: cannot read %s layer %d%s"):format(id, layer, b and (": " .. b) or ""), 0)
  end
  local s = seen_of(rt, id)[layer]
  if misfit(net, layer, w, b) then
    -- keep serving with the layer it has (and the base it is built on)
    refuse(rt, id, layer, info, misfit(net, layer, w, b))
    seen_of(rt, id)[layer] = { hlc = info.hlc, origin = info.origin, w = s and s.w, b = s and s.b }
    return
  end
  if dirty and s and s.w then
    local mw, mb = net:get_layer(layer)
    local rw, rb = rebase(w, mw, s.w), rebase(b, mb, s.b)
    if rw and rb then
      net:set_layer(layer, rw, rb)    -- stays dirty: the next flush writes it
    else
      net:set_layer(layer, w, b)
      net:mark_clean(layer)
    end
  else
    net:set_layer(layer, w, b)
    net:mark_clean(layer)
  end
  accept(rt, id, layer, info, w, b)
end

local function take_up_net(rt, id, net)
  local seen, dirty, n = seen_of(rt, id), nil, 0
  for layer = 1, net:layer_count() do
    local hlc, origin = rt.store:current_identity(id, layer)
    local s = seen[layer]
    if hlc and (not s or s.hlc ~= hlc or s.origin ~= origin) then
      if not dirty then
        dirty = {}
        for _, l in ipairs(net:dirty_layers()) do dirty[l] = true end
      end
      take_up_layer(rt, id, net, layer, dirty[layer])
      n = n + 1
    end
  end
  return n
end

--- Load every layer whose current write changed since the runtime last
-- looked; returns how many. One integer compare when nothing changed.
function S.take_up(rt)
  local epoch = rt.store:weights_epoch()
  if epoch == rt.epoch then return 0 end
  local n = 0
  for _, name in ipairs(rt.order) do n = n + take_up_net(rt, name, rt.experts[name]) end
  n = n + take_up_net(rt, rt.gate_id, rt.gate)
  rt.epoch = epoch
  rt.taken_up = (rt.taken_up or 0) + n
  return n
end

--- The node config a runtime uses: conflict_resolution defaults to "merge",
-- merge_rule to the runtime's own merge_rule (a config already validated by
-- synaptic.p2p_config is used as it is).
function S.node_config(config, merge_rule)
  if config == nil then return { conflict_resolution = "merge", merge_rule = merge_rule } end
  local mt = getmetatable(config)
  if type(config) ~= "table" or (mt and mt.__name == "synaptic.p2p_config") then return config end
  local c = {}
  for k, v in pairs(config) do c[k] = v end
  if c.conflict_resolution == nil then c.conflict_resolution = "merge" end
  if c.merge_rule == nil then c.merge_rule = merge_rule end
  return c
end

--- node_config(config, merge_rule), validated by synaptic.p2p_config: a bad
-- config raises at the caller `level` frames up (the user's line, not this file's).
function S.checked_config(config, level, merge_rule)
  local ok, res = pcall(require("synaptic.p2p").config, S.node_config(config, merge_rule))
  if ok then return res end
  error((tostring(res):gsub("^[^\n]-:%d+: ", "")), level + 1)
end

return S
