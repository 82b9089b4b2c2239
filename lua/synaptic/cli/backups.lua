--- backups list | verify | purge | delete: a backup directory's lifecycle
-- (RocksDB BackupEngine's GetBackupInfo, VerifyBackup, PurgeOldBackups,
-- DeleteBackup). Making a backup and restoring one: maintain.lua.
local synaptic = require "synaptic"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local array, out, human, one_line = output.array, output.out, output.human, output.one_line

local actions = {}

local function backups_of(dir)
  local list, err = synaptic.list_backups(dir)
  if not list then fail("backups: %s", one_line(err)) end
  return list
end

function actions.list(args)
  local list = backups_of(args.dir)
  if args.json then
    local rows = array()
    for i, b in ipairs(list) do
      rows[i] = { id = b.id, timestamp = b.timestamp, time = output.iso_time(b.timestamp),
                  size = b.size, files = b.files }
    end
    output.print_json { dir = args.dir, backups = rows }
  elseif #list == 0 then
    out("no backups in %s", args.dir)
  else
    out("%6s  %-20s  %10s  %5s", "id", "time", "size", "files")
    for _, b in ipairs(list) do
      out("%6d  %-20s  %10s  %5d", b.id, output.iso_time(b.timestamp), human(b.size), b.files)
    end
  end
  return 0
end

function actions.verify(args)
  local ok, report = synaptic.verify_backup(args.dir, args.id)
  if ok == nil then fail("backups verify: %s", one_line(report)) end
  local problems = array()
  for i, p in ipairs(report.problems or {}) do
    problems[i] = { backup = p.backup, where = p.where, error = p.error }
  end
  local ids = array(report.backups or {})
  if args.json then
    output.print_json { dir = args.dir, ok = ok, backups = ids, files = report.files,
                        bytes = report.bytes, problems = problems }
  elseif ok then
    out("ok: %d backup%s, %d files, %s verified", #ids, #ids == 1 and "" or "s",
        report.files or 0, human(report.bytes or 0))
  else
    for _, p in ipairs(problems) do
      out("backup %s: %s: %s", tostring(p.backup), tostring(p.where), one_line(tostring(p.error)))
    end
  end
  if not ok then
    fail("backups verify failed: %d problem%s in %d backup%s", #problems, #problems == 1 and "" or "s",
         #ids, #ids == 1 and "" or "s")
  end
  return 0
end

local function remaining(dir)
  local ids = array()
  for i, b in ipairs(backups_of(dir)) do ids[i] = b.id end
  return ids
end

function actions.purge(args)
  local n, err = synaptic.purge_old_backups(args.dir, args.keep)
  if not n then fail("backups purge: %s", one_line(err)) end
  local left = remaining(args.dir)
  if args.json then
    output.print_json { dir = args.dir, deleted = n, kept = left }
  else
    out("deleted %d backup%s; kept %d (%s)", n, n == 1 and "" or "s", #left,
        #left > 0 and table.concat(left, ", ") or "none")
  end
  return 0
end

function actions.delete(args)
  local ok, err = synaptic.delete_backup(args.dir, args.id)
  if not ok then
    if err:find("^no backup %d") then
      local left = remaining(args.dir)
      err = ("%s (there are: %s)"):format(err, #left > 0 and table.concat(left, ", ") or "none")
    end
    fail("backups delete: %s", one_line(err))
  end
  local left = remaining(args.dir)
  if args.json then
    output.print_json { dir = args.dir, deleted = args.id, kept = left }
  else
    out("deleted backup %d; kept %d", args.id, #left)
  end
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("backups", "List, verify, purge or delete the backups in a backup directory.")
    :command_target("action")
  local function dir_arg(sub) sub:argument("dir", "Backup directory.") end
  local sub = c:command("list", "Every backup: id, time, size, files.")
  dir_arg(sub) arguments.json_flag(sub)
  sub = c:command("verify", "Check every backup's files and checksums (or one with --id); exit 1 on a problem.")
  dir_arg(sub)
  sub:option("--id", "Backup id to check (default: all)."):argname("<n>"):convert(arguments.positive_integer("--id"))
  arguments.json_flag(sub)
  sub = c:command("purge", "Delete all but the newest N backups, and the files only they used.")
  dir_arg(sub)
  sub:option("--keep", "How many of the newest backups to keep."):argname("<n>"):count(1)
    :convert(function(s)
      local n = math.tointeger(tonumber(s))
      if n and n >= 0 then return n end
      return nil, ("--keep must be an integer >= 0, got '%s'"):format(s)
    end)
  arguments.json_flag(sub)
  sub = c:command("delete", "Delete one backup, and the files only it used.")
  dir_arg(sub)
  sub:argument("id", "Backup id."):convert(arguments.positive_integer("id"))
  arguments.json_flag(sub)
end

function M.command(args)
  return actions[args.action](args)
end

return M
