-- The command line's commands: each module adds its own grammar
-- (add_to_parser) and runs itself (command), so a new command is a module;
-- and the inspection commands (get, dump, checkpoint, delete-expert).
local cjson = require "cjson"
local cli = require "synaptic.cli"
local arguments = require "synaptic.cli.arguments"
local helpers = require "helpers"
local C = require "cli_run"

local run, lines, assert_fails, make_store = C.run, C.lines, C.assert_fails, C.make_store

-- cli.run in this process, stdout and stderr captured.
local function capture(argv)
  local o, e = io.tmpfile(), io.tmpfile()
  local so, se = io.stdout, io.stderr
  io.stdout, io.stderr = o, e
  local ok, code = pcall(cli.run, argv)
  io.stdout, io.stderr = so, se
  o:seek("set")
  e:seek("set")
  local out, err = o:read("a"), e:read("a")
  o:close()
  e:close()
  assert(ok, code)
  return code, out, err
end

describe("command modules", function()
  it("every command is added by exactly one module, which runs it", function()
    local parser, owner = arguments.parser()
    local seen = {}
    for _, c in ipairs(parser._commands) do
      assert.is_nil(seen[c._name], c._name)
      seen[c._name] = true
      assert.is_table(owner[c._name], c._name)
      assert.is_function(owner[c._name].command, c._name)
    end
    for _, name in ipairs(arguments.MODULES) do
      assert.is_function(require("synaptic.cli." .. name).add_to_parser, name)
    end
  end)

  it("a new module is a new command: its grammar, its help and its run", function()
    local got
    package.loaded["synaptic.cli.spec_hello"] = {
      add_to_parser = function(p)
        local c = p:command("hello", "Say hello to NAME.")
        c:argument("name", "Who.")
        c:option("--times", "How often."):convert(arguments.positive_integer("--times")):default("1")
      end,
      command = function(args) got = args; io.stdout:write(("hello %s\n"):format(args.name):rep(args.times)) return 0 end,
    }
    table.insert(arguments.MODULES, "spec_hello")
    finally(function()
      table.remove(arguments.MODULES)
      package.loaded["synaptic.cli.spec_hello"] = nil
    end)
    local code, out = capture { "hello", "you", "--times", "2" }
    assert.equal(0, code)
    assert.equal("hello you\nhello you\n", out)
    assert.equal("hello", got.command)
    code, out = capture { "--help" }
    assert.matches("hello%s+Say hello to NAME", out)
    local err
    code, out, err = capture { "hello", "you", "--times", "x" }
    assert.equal(2, code)
    assert.matches("%-%-times must be a positive integer, got 'x'", err)
  end)
end)
