--- The `synaptic` command: `synaptic COMMAND STORE [ARGS]`.
-- `cli.run(argv)` parses the arguments, runs one command and returns the
-- process exit code (0 ok, 1 failure, 2 usage error); it never calls
-- os.exit, so specs can drive it in-process. bin/synaptic is the launcher.
--
-- The package: arguments (the program's parser and shared checks), output
-- (JSON, tables, sizes, the progress line), common (failures, files, opening
-- a store), and the command modules listed in arguments.MODULES, each adding
-- its own commands to the parser and running them.
local synaptic = require "synaptic"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local cli = {}

local function report_usage_error(msg)
  io.stderr:write("synaptic: ", output.one_line(msg:gsub("\nDid you mean", "; did you mean")),
                  " (see synaptic --help)\n")
  return common.EXIT_USAGE
end

-- A failure prints its message; anything else raised (a bug, or the API
-- refusing an argument) is still one line, with the traceback on request.
local function run_command(module, args)
  local traceback
  local ok, res = xpcall(module.command, function(e)
    if not common.is_failure(e) then traceback = debug.traceback(tostring(e), 2) end
    return e
  end, args)
  if ok then return res or 0 end
  output.end_progress()
  io.stdout:flush()
  if common.is_failure(res) then
    io.stderr:write("synaptic: ", output.one_line(res.msg), "\n")
    return res.code
  end
  io.stderr:write("synaptic: ", args.command, ": ", output.one_line(res), "\n")
  if os.getenv("SYNAPTIC_DEBUG") then io.stderr:write(traceback or "", "\n") end
  return common.EXIT_FAILURE
end

--- Run the command line in argv (a list, e.g. the global `arg`); returns
-- the exit code.
function cli.run(argv)
  local list = {}
  for i, a in ipairs(argv or {}) do list[i] = tostring(a) end
  local parser, owner = arguments.parser()

  local help = arguments.help_request(parser, list)
  if help then
    io.stdout:write(help, "\n")
    return 0
  end
  if list[1] == "--version" then
    output.out("synaptic %s", synaptic.version)
    return 0
  end

  local ok, args = parser:pparse(list)
  if not ok then return report_usage_error(args) end
  return run_command(owner[args.command], args)
end

return cli
