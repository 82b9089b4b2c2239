--- The command line's grammar: the program's parser, the argument checks
-- commands share, and the -h/--help lookup that argparse cannot do without
-- exiting. Each command module adds its own commands to the parser (as
-- LuaRocks' command modules do): `module.add_to_parser(parser)` declares
-- them, `module.command(args)` runs the one parsed. A new command is a
-- module (or a function in one), a line in MODULES if the module is new,
-- docs/cli.md and a spec.
local argparse = require "argparse"

local arguments = {}

-- The command modules under synaptic.cli, in the order --help lists them.
arguments.MODULES = {
  "inspect", "dump", "metrics", "maintain", "checkpoint", "backups", "salvage", "transfer", "serve", "keygen", "report", "demo",
}

function arguments.positive_integer(what)
  return function(s)
    local n = math.tointeger(tonumber(s))
    if n and n > 0 then return n end
    return nil, ("%s must be a positive integer, got '%s'"):format(what, s)
  end
end

function arguments.positive_number(what)
  return function(s)
    local n = tonumber(s)
    if n and n > 0 and n < 1e9 then return n end
    return nil, ("%s must be a positive number, got '%s'"):format(what, s)
  end
end

function arguments.json_flag(c)
  return c:flag("--json", "Print machine-readable JSON (and nothing else) on stdout.")
end

function arguments.store_arg(c)
  return c:argument("store", "Path of the store.")
end

-- The parser, and the module that owns each command name (for cli.run).
function arguments.parser()
  local p = argparse("synaptic", "Inspect and maintain a synaptic store.")
    :epilog("Usage is synaptic COMMAND STORE [ARGS]; 'synaptic COMMAND --help' describes one command.\n" ..
            "Exit codes: 0 success, 1 failure, 2 usage error.")
    :command_target("command")
    :help_max_width(80)
  p:flag("--version", "Print the synaptic version and exit.")
  local owner = {}
  for _, name in ipairs(arguments.MODULES) do
    local module = require("synaptic.cli." .. name)
    local before = #p._commands
    module.add_to_parser(p)
    for i = before + 1, #p._commands do owner[p._commands[i]._name] = module end
  end
  return p, owner
end

-- argparse's own --help prints and calls os.exit; run() must return instead,
-- so -h/--help is found here first: the help text of the (sub)command it
-- follows ("backups purge --help"), or the program's; nil when help was
-- not asked for.
function arguments.help_request(parser, argv)
  local node = parser
  for _, a in ipairs(argv) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then return node:get_help() end
    if a:sub(1, 1) ~= "-" then
      for _, c in ipairs(node._commands or {}) do
        if c._name == a then node = c break end
      end
    end
  end
  return nil
end

return arguments
