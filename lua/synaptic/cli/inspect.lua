--- Read-only commands: info, checkpoints, verify.
local synaptic = require "synaptic"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local array, out, null = output.array, output.out, output.null

local commands = {}

-- Every expert with its config, layers and parameter count. What cannot be
-- read (a damaged store) is left out and noted in unreadable, so that info
-- shows everything else.
local function describe_experts(store, unreadable)
  local function try(what, v, err, ...)
    if v == nil and err ~= nil then
      unreadable[#unreadable + 1] = { what = what, error = output.one_line(tostring(err)) }
    end
    return v, err, ...
  end
  local experts = array()
  for _, id in ipairs(try("the list of experts", store:list_experts()) or {}) do
    local cfg = try("config " .. id, store:get_config(id))
    local e = { id = id, config = cfg or null, parameter_count = 0, layers = array() }
    for _, layer in ipairs(try("layers of " .. id, store:layers(id)) or {}) do
      local versions = try(("versions of %s layer %d"):format(id, layer),
                           store:weight_versions(id, layer)) or {}
      local w, b, info = try(("weights %s layer %d"):format(id, layer), store:get_weights(id, layer))
      if w then
        e.parameter_count = e.parameter_count + #w + #b
        e.layers[#e.layers + 1] = {
          layer = layer, versions = array(versions), latest = info.version,
          shape = info.shape and array(info.shape) or null,
          weights = #w, biases = #b, codec = info.codec,
          raw_bytes = info.raw_bytes, stored_bytes = info.stored_bytes,
          timestamp = info.timestamp,
        }
      end
    end
    experts[#experts + 1] = e
  end
  return experts
end

local function print_expert(e)
  local cfg = e.config ~= null and e.config or nil
  local about = {}
  if cfg and cfg.domain then about[#about + 1] = "domain " .. tostring(cfg.domain) end
  if cfg and type(cfg.architecture) == "table" then
    about[#about + 1] = "architecture " .. table.concat(cfg.architecture, "-")
  end
  about[#about + 1] = ("%d parameters in %d layer%s"):format(
    e.parameter_count, #e.layers, #e.layers == 1 and "" or "s")
  out("")
  out("%s: %s", e.id, table.concat(about, ", "))
  if #e.layers > 0 then
    out("  %-6s %-8s %-9s %-10s %9s  %-8s %s", "layer", "version", "versions", "shape",
        "params", "codec", "stored")
  end
  for _, l in ipairs(e.layers) do
    local vs = l.versions
    local range = #vs == 1 and tostring(vs[1]) or ("%d-%d"):format(vs[1], vs[#vs])
    out("  %-6d %-8d %-9s %-10s %9d  %-8s %s", l.layer, l.latest, range,
        output.shape_text(l.shape ~= null and l.shape or { l.weights }),
        l.weights + l.biases, l.codec, output.human(l.stored_bytes))
  end
end

-- "2 (accuracy: 5 points, loss: 120 points)", the first few names only.
local function metrics_line(metrics)
  local shown = {}
  for i = 1, math.min(#metrics, 6) do
    local m = metrics[i]
    shown[i] = ("%s: %d point%s"):format(m.name, m.points, m.points == 1 and "" or "s")
  end
  if #metrics > #shown then shown[#shown + 1] = "..." end
  if #metrics == 0 then return "0" end
  return ("%d (%s)"):format(#metrics, table.concat(shown, ", "))
end

function commands.info(args)
  local store <close> = common.open_store(args.store, { read_only = true })
  local unreadable = array()
  local stats, serr = store:storage_stats()
  if not stats then unreadable[#unreadable + 1] = { what = "storage statistics", error = serr } end
  local experts = describe_experts(store, unreadable)
  local got, metrics = pcall(common.metric_summary, store)
  if not got then
    unreadable[#unreadable + 1] = { what = "metrics", error = type(metrics) == "table" and metrics.msg or tostring(metrics) }
    metrics = {}
  end
  if args.json then
    output.print_json { store = args.store, synaptic_version = synaptic.version,
                        storage = stats or null, experts = experts, metrics = array(metrics),
                        unreadable = unreadable }
  else
    local human = output.human
    out("store        %s (synaptic %s)", args.store, synaptic.version)
    if stats then
      out("size         %s in %d files", stats.human_size, stats.file_count)
      out("weights      %d records: %s raw, %s stored (%.1f%%)", stats.weight_records,
          human(stats.raw_bytes), human(stats.stored_bytes), 100 * stats.compression_ratio)
      out("checkpoints  %d", stats.checkpoint_count)
    end
    out("metrics      %s", metrics_line(metrics))
    out("experts      %d", #experts)
    for _, e in ipairs(experts) do print_expert(e) end
    if #unreadable > 0 then
      out("")
      out("could not read:")
      for _, u in ipairs(unreadable) do out("  %s: %s", u.what, u.error) end
    end
  end
  if #unreadable > 0 then
    fail("info: %d part%s of the store could not be read (see 'synaptic verify %s')", #unreadable,
         #unreadable == 1 and "" or "s", args.store)
  end
  return 0
end

function commands.checkpoints(args)
  local store <close> = common.open_store(args.store, { read_only = true })
  local list = array()
  for _, id in ipairs(check(store:list_checkpoints()) or {}) do
    local cp = check(store:get_checkpoint(id))
    if cp then
      list[#list + 1] = {
        id = cp.id or id, created_at = cp.created_at, created_at_iso = output.iso_time(cp.created_at),
        system_version = cp.system_version or null,
        pin_count = #(cp.pins or {}), expert_count = #(cp.expert_states or {}),
        pins = array(cp.pins or {}),
      }
    end
  end
  if args.json then
    output.print_json { store = args.store, checkpoints = list }
    return 0
  end
  if #list == 0 then
    out("no checkpoints in %s", args.store)
    return 0
  end
  out("%-36s  %-20s  %-12s  %5s  %7s", "id", "created_at", "version", "pins", "experts")
  for _, c in ipairs(list) do
    local v = c.system_version ~= null and tostring(c.system_version) or "-"
    out("%-36s  %-20s  %-12s  %5d  %7d", c.id, c.created_at_iso, v, c.pin_count, c.expert_count)
  end
  return 0
end

function commands.verify(args)
  local store <close> = common.open_store(args.store, { read_only = true })
  local done, update = output.progress(args, "verifying " .. args.store, "records")
  local ok, report = store:verify { progress = update }
  done()
  if ok == nil then fail("verify: %s", output.one_line(report)) end
  local problems = array()
  for i, p in ipairs(report.problems or {}) do
    problems[i] = { where = p.where, error = p.error }
  end
  local records = report.records or 0
  if args.json then
    output.print_json { store = args.store, ok = ok, records = records, problems = problems }
  elseif ok then
    out("ok: %d records verified, no problems", records)
  else
    for _, p in ipairs(problems) do out("%s: %s", tostring(p.where), tostring(p.error)) end
  end
  if not ok then
    local first = problems[1]
    fail("verify failed: %d problem%s in %d records%s", #problems, #problems == 1 and "" or "s",
         records, first and (" (first: %s: %s)"):format(first.where, output.one_line(first.error)) or "")
  end
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("info", "Storage statistics, and every expert with its layers, versions and parameters.")
  arguments.store_arg(c) arguments.json_flag(c)

  c = p:command("checkpoints", "List checkpoints, oldest first.")
  arguments.store_arg(c) arguments.json_flag(c)

  c = p:command("verify", "Check every record, checksum and checkpoint pin; exit 1 if anything is wrong.")
  arguments.store_arg(c) arguments.json_flag(c)
end

function M.command(args)
  return commands[args.command](args)
end

return M
