--- Reading records from the shell, as ldb's get/scan/dump and the sqlite3
-- shell do: get (one layer at one version, with its statistics) and dump
-- (every record of the store, or of one column family, one line each).
-- dump shows the records a user writes (weights, configs, checkpoints,
-- state, metrics), not the store's own bookkeeping (history, pins, the
-- replication log).
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local array, out, human = output.array, output.out, output.human

local commands = {}

local FIRST_VALUES = 8

-- min, max, mean and (population) standard deviation of a floats array;
-- nil for an empty one. Two passes: the mean first, so the deviation does
-- not lose precision to a large mean.
local function summary(a)
  local n = #a
  if n == 0 then return nil end
  local lo, hi, sum = math.huge, -math.huge, 0
  for i = 1, n do
    local x = a[i]
    if x < lo then lo = x end
    if x > hi then hi = x end
    sum = sum + x
  end
  local mean, sq = sum / n, 0
  for i = 1, n do sq = sq + (a[i] - mean) ^ 2 end
  local first = array()
  for i = 1, math.min(n, FIRST_VALUES) do first[i] = a[i] end
  return { count = n, min = lo, max = hi, mean = mean, std = math.sqrt(sq / n), first = first }
end

-- JSON has no inf or nan: those become strings.
local function finite(t)
  if not t then return output.null end
  for k, v in pairs(t) do
    if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then t[k] = tostring(v) end
  end
  for i, v in ipairs(t.first) do
    if v ~= v or v == math.huge or v == -math.huge then t.first[i] = tostring(v) end
  end
  return t
end

local function number_list(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = ("%.6g"):format(v) end
  return table.concat(parts, ", ")
end

local function print_summary(what, s)
  if not s then out("%-8s none", what .. ":") return end
  out("%-8s %d values  min %.6g  max %.6g  mean %.6g  std %.6g", what .. ":", s.count, s.min, s.max, s.mean, s.std)
  out("%-8s %s%s", "", number_list(s.first), s.count > #s.first and ", ..." or "")
end

function commands.get(args)
  local store <close> = common.open_store(args.store, { read_only = true })
  local w, b, info = common.get_weights(store, args.expert, args.layer, args.version)
  if not w then
    local versions = check(store:weight_versions(args.expert, args.layer))
    if #versions == 0 then
      fail("no weights for expert '%s' layer %d in %s", args.expert, args.layer, args.store)
    end
    fail("no version %d of expert '%s' layer %d (there are: %s)", args.version, args.expert, args.layer,
         table.concat(versions, ", "))
  end
  local ws, bs = summary(w), summary(b)
  if args.json then
    output.print_json {
      expert = args.expert, layer = args.layer, version = info.version,
      shape = info.shape and array(info.shape) or output.null, codec = info.codec,
      raw_bytes = info.raw_bytes, stored_bytes = info.stored_bytes, timestamp = info.timestamp,
      origin = info.origin, merge = info.merge or output.null,
      weights = finite(ws), biases = finite(bs),
    }
    return 0
  end
  out("%s layer %d v%d  shape %s  codec %s  stored %s of %s raw (%.2f)", args.expert, args.layer, info.version,
      output.shape_text(info.shape), tostring(info.codec), human(info.stored_bytes), human(info.raw_bytes),
      info.raw_bytes > 0 and info.stored_bytes / info.raw_bytes or 0)
  out("written %s by %s%s", output.iso_time(info.timestamp), tostring(info.origin),
      info.merge and (" (merge: " .. tostring(info.merge) .. ")") or "")
  print_summary("weights", ws)
  print_summary("biases", bs)
  return 0
end

---------------------------------------------------------------------------
-- dump
---------------------------------------------------------------------------

local CFS = { "neural_weights", "expert_config", "checkpoints", "system_state", "metrics" }

-- Each column family's records, as (key, fields) pairs passed to emit.
local scan = {}

function scan.neural_weights(store, emit)
  for _, id in ipairs(check(store:list_experts())) do
    for _, layer in ipairs(check(store:layers(id))) do
      for _, v in ipairs(check(store:weight_versions(id, layer))) do
        local w, b, info = common.get_weights(store, id, layer, v)
        if w then
          emit(("%s/%d/v%d"):format(id, layer, v), {
            shape = info.shape and array(info.shape) or output.null, weights = #w, biases = #b,
            codec = info.codec, raw_bytes = info.raw_bytes, stored_bytes = info.stored_bytes,
            timestamp = info.timestamp, origin = info.origin,
          }, ("shape %s  %d+%d floats  %s  %s stored of %s  %s"):format(output.shape_text(info.shape), #w, #b,
             tostring(info.codec), human(info.stored_bytes), human(info.raw_bytes), output.iso_time(info.timestamp)))
        end
      end
    end
  end
end

function scan.expert_config(store, emit)
  for _, id in ipairs(check(store:list_experts())) do
    local cfg = check(store:get_config(id))
    if cfg then
      cfg.architecture = type(cfg.architecture) == "table" and array(cfg.architecture) or cfg.architecture
      emit(id, cfg, ("domain %s  %d parameters  lr %.6g  architecture %s  updated %s"):format(
        tostring(cfg.domain), cfg.parameter_count or 0, cfg.learning_rate or 0,
        type(cfg.architecture) == "table" and table.concat(cfg.architecture, "-") or tostring(cfg.architecture),
        output.iso_time(cfg.updated_at)))
    end
  end
end

function scan.checkpoints(store, emit)
  for _, id in ipairs(check(store:list_checkpoints())) do
    local cp = check(store:get_checkpoint(id))
    if cp then
      local pins = #(cp.pins or {})
      cp.pins, cp.metadata = nil, nil       -- internal: the pins count, the runtime's own counters
      cp.pin_count = pins
      cp.expert_states = array(cp.expert_states or {})
      emit(id, cp, ("created %s  version %s%s  %d pins  %d expert states"):format(output.iso_time(cp.created_at),
        tostring(cp.system_version or "-"), cp.step and ("  step " .. cp.step) or "", pins, #cp.expert_states))
    end
  end
end

function scan.system_state(store, emit)
  for _, key in ipairs(check(store:state_keys())) do
    local v = check(store:get_state(key))
    if v ~= nil then emit(key, { value = v }, output.encode_json(v)) end
  end
end

function scan.metrics(store, emit)
  for _, name in ipairs(check(store:metric_names())) do
    for _, p in ipairs(check(store:metrics(name))) do
      emit(("%s@%.17g"):format(name, p.timestamp), { name = name, timestamp = p.timestamp, value = p.value,
           origin = p.origin }, ("%.17g  %s"):format(p.value, output.iso_time(p.timestamp)))
    end
  end
end

function commands.dump(args)
  local store <close> = common.open_store(args.store, { read_only = true })
  local n = 0
  for _, cf in ipairs(CFS) do
    if not args.cf or args.cf == cf then
      scan[cf](store, function(key, fields, text)
        n = n + 1
        if args.json then
          fields.cf, fields.key = cf, key
          output.print_json(fields)
        else
          out("%s  %s  %s", cf, key, text)
        end
      end)
    end
  end
  if n == 0 and not args.json then
    io.stderr:write(("synaptic: no records in %s%s\n"):format(args.store, args.cf and (" " .. args.cf) or ""))
  end
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("get", "Print one layer's weights: shape, codec, sizes, statistics and first values.")
  arguments.store_arg(c)
  c:argument("expert", "Expert id.")
  c:argument("layer", "Layer number."):convert(function(s)
    local n = math.tointeger(tonumber(s))
    if n and n >= 0 then return n end
    return nil, ("layer must be an integer >= 0, got '%s'"):format(s)
  end)
  c:option("--version", "This version (default: the current one)."):argname("<n>")
    :convert(arguments.positive_integer("--version"))
  arguments.json_flag(c)

  c = p:command("dump", "Print every record, one line each: column family, key, fields.")
  arguments.store_arg(c)
  c:option("--cf", "Only this column family: " .. table.concat(CFS, ", ") .. "."):argname("<name>")
    :convert(function(s)
      for _, cf in ipairs(CFS) do if cf == s then return s end end
      return nil, ("--cf must be one of %s, got '%s'"):format(table.concat(CFS, ", "), s)
    end)
  c:flag("--json", "Print one JSON object a line (JSON Lines), with cf and key.")
end

function M.command(args)
  return commands[args.command](args)
end

return M
