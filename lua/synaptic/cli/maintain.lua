--- Commands that look after a store's files: compact, backup, restore.
local synaptic = require "synaptic"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local out, human, one_line = output.out, output.human, output.one_line

local commands = {}

function commands.compact(args)
  local store <close> = common.open_store(args.store)
  local before = check(store:storage_stats())
  -- RocksDB compacts in one blocking call: the bar shows its start and end
  local done, update = output.progress(args, "compacting " .. args.store, "bytes")
  update(0, before.total_bytes)
  local ok, err = store:compact()
  update(before.total_bytes, before.total_bytes)
  done()
  if not ok then fail("compact: %s", one_line(err)) end
  local after = check(store:storage_stats())
  out("compacted %s: %s in %d files -> %s in %d files", args.store,
      human(before.total_bytes), before.file_count, human(after.total_bytes), after.file_count)
  return 0
end

function commands.backup(args)
  local store <close> = common.open_store(args.store)
  local done, update = output.progress(args, "backing up " .. args.store .. " to " .. args.dir, "bytes")
  local id, err = store:backup(args.dir, { progress = update })
  done()
  if not id then fail("backup: %s", one_line(err)) end
  if args.json then
    local entry = { id = id, dir = args.dir }
    for _, b in ipairs(synaptic.list_backups(args.dir) or {}) do
      if b.id == id then entry.timestamp, entry.size, entry.files = b.timestamp, b.size, b.files end
    end
    output.print_json(entry)
  else
    out("%d", id)
  end
  return 0
end

-- The listing of backup `id` in dir (for the summary line), or nil.
local function listing(dir, id)
  for _, b in ipairs(synaptic.list_backups(dir) or {}) do
    if b.id == id then return b end
  end
end

-- The core picks the backup (the newest, damaged or not: a damaged one fails
-- naming itself rather than an older one being restored), checks it whole
-- before touching STORE, and refuses a store open in any process.
function commands.restore(args)
  local store_path, dir = args.store, args.dir
  if common.exists(store_path) then
    if common.is_file(store_path) then fail("'%s' exists and is not a directory", store_path) end
    if not common.dir_is_empty(store_path) and not args.force then
      fail("'%s' exists and is not empty; use --force to replace it", store_path)
    end
  end
  local label = args.id and ("backup " .. args.id) or "the latest backup"
  local done, update = output.progress(args, ("restoring %s into %s"):format(label, store_path), "bytes")
  local ok, rerr = synaptic.restore_backup(dir, store_path, args.id,
                                           { force = args.force or false, progress = update })
  done()
  if not ok then
    if args.id and rerr:find("^no backup %d") then
      local ids = {}
      for _, b in ipairs(synaptic.list_backups(dir) or {}) do ids[#ids + 1] = tostring(b.id) end
      rerr = ("%s (there are: %s)"):format(rerr, #ids > 0 and table.concat(ids, ", ") or "none")
    end
    fail("restore: %s", one_line(rerr))
  end
  local backups = synaptic.list_backups(dir) or {}
  local chosen = listing(dir, args.id) or backups[#backups] or { id = args.id or 0 }
  out("restored backup %d (%s, %s) into %s", chosen.id,
      chosen.timestamp and output.iso_time(chosen.timestamp) or "?", human(chosen.size or 0), store_path)
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("compact", "Compact the store's files.")
  arguments.store_arg(c)

  c = p:command("backup", "Add an incremental backup of the store to DIR; prints the backup id.")
  arguments.store_arg(c) c:argument("dir", "Backup directory (created if needed).") arguments.json_flag(c)

  c = p:command("restore", "Restore a backup from DIR into the store path (the latest unless --id).")
  c:argument("store", "Path to restore into; must be absent or empty unless --force.")
  c:argument("dir", "Backup directory.")
  c:option("--id", "Backup id to restore."):argname("<n>"):convert(arguments.positive_integer("--id"))
  c:flag("--force", "Restore even if the store path is not empty.")
end

function M.command(args)
  return commands[args.command](args)
end

return M
