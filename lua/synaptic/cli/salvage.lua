--- salvage: copy what is still readable of a damaged store into a new one.
local synaptic = require "synaptic"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local fail = common.fail
local out, one_line, array = output.out, output.one_line, output.array

local commands = {}

function commands.salvage(args)
  common.check_store_path(args.store)
  -- salvage reads the whole store in one call with no callback: the bar
  -- shows its start and end over the source's bytes, as compact does
  local done, update = output.progress(args, ("salvaging %s into %s"):format(args.store, args.out), "bytes")
  local total = args.json and 0 or common.dir_bytes(args.store)
  update(0, total)
  local ok, report = synaptic.salvage(args.store, args.out)
  update(total, total)
  done()
  if ok == nil then fail("salvage: %s", one_line(report)) end
  local records = 0
  for _, n in pairs(report.recovered) do records = records + n end
  local lost, unreadable = array(report.lost), array(report.unreadable)
  if args.json then
    output.print_json { store = args.store, out = args.out, ok = ok, recovered = report.recovered,
                        lost = lost, unreadable = unreadable, repaired = report.repaired,
                        wal = report.wal or output.null }
  else
    out("salvaged %s into %s: %d records recovered", args.store, args.out, records)
    local names = {}
    for name in pairs(report.recovered) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do out("  %-15s %d", name, report.recovered[name]) end
    if report.repaired then out("(the store would not open: a repaired copy was read)") end
    if report.wal then out("wal: %s", report.wal) end
    for _, u in ipairs(unreadable) do out("unreadable: %s: %s", u.where, one_line(u.error)) end
    for _, l in ipairs(lost) do out("lost: %s: %s", l.where, one_line(l.error)) end
  end
  -- the exit code says whether records were lost: an unreadable stretch
  -- whose records were all recovered (from the blob files) lost nothing
  if #lost > 0 then
    fail("salvage: %d record%s lost, %d unreadable stretch%s (the rest is in %s)", #lost,
         #lost == 1 and "" or "s", #unreadable, #unreadable == 1 and "" or "es", args.out)
  end
  if not ok and not args.json then
    out("0 records lost%s", #unreadable > 0 and (": every record of the %d unreadable stretch%s was recovered")
        :format(#unreadable, #unreadable == 1 and "" or "es") or " (a repaired copy was read)")
  end
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("salvage", "Copy every readable record of a damaged store into a new store OUT; "
    .. "names what was lost; exit 1 if anything was.")
  arguments.store_arg(c) c:argument("out", "Path of the new store (must not exist).") arguments.json_flag(c)
end

function M.command(args)
  return commands[args.command](args)
end

return M
