--- Metrics out of a store: `synaptic metrics STORE [NAME]`.
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local array, out = output.array, output.out

-- The shortest decimal that reads back as the same double, so a CSV or
-- text value round-trips without 17 noisy digits.
local function number_text(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v or v == math.huge or v == -math.huge then return tostring(v) end
  for digits = 15, 17 do
    local s = ("%." .. digits .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
  return ("%.17g"):format(v)
end

local function csv_field(s)
  s = tostring(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- Whether the store keeps the origin of points (it does once metrics are
-- replicated): then every CSV row names it.
local function has_origin(points)
  for _, p in ipairs(points) do
    if p.origin ~= nil then return true end
  end
  return false
end

local function print_points(args, points)
  if args.json then
    local list = array()
    for i, p in ipairs(points) do list[i] = { timestamp = p.timestamp, value = p.value, origin = p.origin } end
    output.print_json(list)
  elseif args.csv then
    local origin = has_origin(points)
    out(origin and "timestamp,value,origin" or "timestamp,value")
    for _, p in ipairs(points) do
      local row = number_text(p.timestamp) .. "," .. number_text(p.value)
      out(origin and row .. "," .. csv_field(p.origin or "") or row)
    end
  else
    out("%-20s  %-18s  %s", "time (UTC)", "timestamp", "value")
    for _, p in ipairs(points) do
      out("%-20s  %-18s  %s", output.iso_time(p.timestamp), number_text(p.timestamp), number_text(p.value))
    end
  end
end

local function print_summary(args, list)
  if args.json then
    output.print_json(list)
  elseif args.csv then
    out("name,points")
    for _, m in ipairs(list) do out("%s,%d", csv_field(m.name), m.points) end
  elseif #list == 0 then
    out("no metrics in %s", args.store)
  else
    out("%-32s  %8s", "name", "points")
    for _, m in ipairs(list) do out("%-32s  %8d", m.name, m.points) end
  end
end

local commands = {}

local function timestamp(what)
  return function(s)
    local n = tonumber(s)
    if n and n == n and n > -math.huge and n < math.huge then return n end
    return nil, ("%s must be a time in Unix seconds, got '%s'"):format(what, s)
  end
end

function commands.metrics(args)
  if args.from and args.to and args.from > args.to then
    fail("--from %s is after --to %s", number_text(args.from), number_text(args.to))
  end
  local store <close> = common.open_store(args.store, { read_only = true })
  if not args.name then
    print_summary(args, array(common.metric_summary(store, args.from, args.to)))
    return 0
  end
  if check(store:metric_count(args.name)) == 0 then
    local names = check(store:metric_names())
    fail("no metric '%s' in %s (%s)", args.name, args.store,
         #names == 0 and "it has none" or "it has: " .. table.concat(names, ", "))
  end
  print_points(args, check(store:metrics(args.name, args.from, args.to)))
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("metrics", "List metric names with their point counts, or print one metric's points.")
  arguments.store_arg(c) c:argument("name", "Metric name (default: list every metric)."):args("?")
  c:option("--from", "Only points at or after this time (Unix seconds)."):argname("<t>")
    :convert(timestamp("--from"))
  c:option("--to", "Only points at or before this time (Unix seconds)."):argname("<t>")
    :convert(timestamp("--to"))
  c:mutex(
    c:flag("--csv", "Print CSV: a header, then one row per point (or per metric)."),
    c:flag("--json", "Print machine-readable JSON (and nothing else) on stdout."))
end

function M.command(args)
  return commands[args.command](args)
end

return M
