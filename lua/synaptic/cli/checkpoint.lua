--- Writing from the shell: checkpoint create | restore | delete, and
-- delete-expert. Each opens the store for writing, so a store that a
-- runtime or serve holds open is refused ("already open", or in use by
-- another process).
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local out, one_line = output.out, output.one_line

local actions = {}

local function require_checkpoint(store, args)
  local cp = check(store:get_checkpoint(args.id))
  if not cp then fail("no checkpoint '%s' in %s", args.id, args.store) end
  return cp
end

function actions.create(args)
  local store <close> = common.open_store(args.store)
  local id, err = store:create_checkpoint { system_version = args.system_version, step = args.step }
  if not id then fail("checkpoint create: %s", one_line(err)) end
  local cp = check(store:get_checkpoint(id))
  if args.json then
    output.print_json { id = id, created_at = cp.created_at, system_version = cp.system_version or output.null,
                        step = cp.step or output.null, pins = #(cp.pins or {}) }
  else
    out("%s", id)
  end
  return 0
end

function actions.restore(args)
  local store <close> = common.open_store(args.store)
  local cp = require_checkpoint(store, args)
  local ok, err = store:restore_checkpoint(args.id)
  if not ok then fail("checkpoint restore: %s", one_line(err)) end
  out("restored checkpoint %s (%s, %d layers)", args.id, output.iso_time(cp.created_at), #(cp.pins or {}))
  return 0
end

function actions.delete(args)
  local store <close> = common.open_store(args.store)
  require_checkpoint(store, args)
  local ok, err = store:delete_checkpoint(args.id)
  if not ok then fail("checkpoint delete: %s", one_line(err)) end
  out("deleted checkpoint %s", args.id)
  return 0
end

local commands = {}

function commands.checkpoint(args)
  return actions[args.action](args)
end

commands["delete-expert"] = function(args)
  local store <close> = common.open_store(args.store)
  local ok, err = store:delete_expert(args.expert)
  if ok == nil then fail("delete-expert: %s", one_line(err)) end
  -- false: no weights or config left (never written, or deleted before)
  if not ok then fail("no expert '%s' in %s (nothing to delete)", args.expert, args.store) end
  out("deleted expert %s (checkpoints that pinned it still restore it)", args.expert)
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("checkpoint", "Create, restore or delete a checkpoint of the store's current weights.")
    :command_target("action")
  local sub = c:command("create", "Checkpoint the current weights of every expert; prints its id.")
  arguments.store_arg(sub)
  sub:option("--system-version", "The checkpoint's system_version."):argname("<s>")
  sub:option("--step", "The checkpoint's step (an integer >= 0)."):argname("<n>"):convert(function(s)
    local n = math.tointeger(tonumber(s))
    if n and n >= 0 then return n end
    return nil, ("--step must be an integer >= 0, got '%s'"):format(s)
  end)
  arguments.json_flag(sub)
  sub = c:command("restore", "Make the weights a checkpoint pins current again.")
  arguments.store_arg(sub) sub:argument("id", "Checkpoint id.")
  sub = c:command("delete", "Delete a checkpoint (the weights it alone kept become collectable).")
  arguments.store_arg(sub) sub:argument("id", "Checkpoint id.")

  c = p:command("delete-expert", "Delete an expert's weights and config (replicated as a tombstone).")
  arguments.store_arg(c) c:argument("expert", "Expert id.")
end

function M.command(args)
  return commands[args.command](args)
end

return M
