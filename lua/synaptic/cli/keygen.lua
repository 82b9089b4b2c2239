--- keygen: a CURVE keypair in a file only its owner can read (the format
-- is in keys.lua), the public key printed last.
local synaptic = require "synaptic"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"
local keys = require "synaptic.cli.keys"

local fail, q = common.fail, common.shell_quote
local out = output.out

local commands = {}

function commands.keygen(args)
  local path = args.file
  if common.exists(path) and not args.force then
    fail("'%s' exists; refusing to overwrite a key file (use --force)", path)
  end
  local public, secret = synaptic.keypair()
  -- written under a temporary name created with umask 077, then renamed:
  -- the secret is never readable by others, not even for a moment
  local tmp = path .. ".tmp-" .. synaptic.uuid():sub(1, 8)
  if not os.execute("umask 077 && : > " .. q(tmp)) then fail("cannot create '%s'", tmp) end
  local f, err = io.open(tmp, "wb")
  if not f then os.remove(tmp); fail("cannot write '%s': %s", tmp, err) end
  local ok, werr = f:write(keys.format(public, secret))
  local cok, cerr = f:close()
  if not ok or not cok then os.remove(tmp); fail("cannot write '%s': %s", tmp, werr or cerr) end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); fail("cannot write '%s': %s", path, rerr) end
  if args.json then
    output.print_json { file = path, public = public }
  else
    out("wrote a CURVE keypair to %s (mode 0600); its public key:", path)
    out("%s", public)
  end
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("keygen", "Write a CURVE keypair to FILE (mode 0600) for serve --key; prints the public key last.")
  c:argument("file", "Key file to write.")
  c:flag("--force", "Replace FILE if it exists.")
  arguments.json_flag(c)
end

function M.command(args)
  return commands[args.command](args)
end

return M
