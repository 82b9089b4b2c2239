-- The command line's commands: each module adds its own grammar
-- (add_to_parser) and runs itself (command), so a new command is a module;
-- and the inspection commands (get, dump, checkpoint, delete-expert).
local synaptic = require "synaptic"
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

  it("--help after a subcommand's subcommand prints that one's help", function()
    local code, out = capture { "backups", "purge", "--help" }
    assert.equal(0, code)
    assert.matches("^Usage: synaptic backups purge %[%-h%] %-%-keep <n>", out)
    code, out = capture { "checkpoint", "--help" }
    assert.matches("^Usage: synaptic checkpoint %[%-h%] <command> ...", out)
  end)
end)

describe("inspection from the shell", function()
  local root, db

  setup(function()
    root = helpers.tmpdir("cli73")
    db = root .. "/db"
    make_store(db)
  end)

  teardown(function() helpers.cleanup() end)

  it("get prints one layer: shape, codec, sizes, statistics, first values", function()
    local code, out, err = run("get", db, "raw", "0")
    assert.equal(0, code, err)
    local l = lines(out)
    assert.matches("^raw layer 0 v1  shape %-  codec %S+  stored %d+ B of 16 B raw", l[1])
    assert.matches("^weights: 4 values  min %-2%.25  max 1%.5  mean %-0%.1875  std 1%.339", l[3])
    assert.matches("^%s+1%.5, %-2%.25, 3e%-07, 0$", l[4])
    assert.equal("biases:  none", l[5])
    code, out = run("get", db, "coding", "1", "--version", "1", "--json")
    assert.equal(0, code)
    local j = cjson.decode(out)
    assert.equal(1, j.version)
    assert.same({ 8, 12 }, j.shape)
    assert.equal(96, j.weights.count)
    assert.equal(8, #j.weights.first)
    assert.near(helpers.weights(96, 1)[1], j.weights.first[1], 1e-7)
    local sum, sq = 0, 0
    for _, x in ipairs(helpers.weights(96, 1)) do sum = sum + helpers.f32(x) end
    for _, x in ipairs(helpers.weights(96, 1)) do sq = sq + (helpers.f32(x) - sum / 96) ^ 2 end
    assert.near(sum / 96, j.weights.mean, 1e-9)
    assert.near(math.sqrt(sq / 96), j.weights.std, 1e-9)
    local _, current = run("get", db, "coding", "1", "--json")
    assert.equal(3, cjson.decode(current).version)
    assert_fails(1, "^synaptic: no version 9 of expert 'coding' layer 1 %(there are: 1, 2, 3%)$",
                 run("get", db, "coding", "1", "--version", "9"))
    assert_fails(1, "^synaptic: no weights for expert 'nope' layer 1 in ", run("get", db, "nope", "1"))
    assert_fails(2, "layer must be an integer >= 0, got 'x'", run("get", db, "coding", "x"))
  end)

  it("dump prints every record once, one line each, filtered by --cf", function()
    local code, out, err = run("dump", db)
    assert.equal(0, code, err)
    local count = {}
    for _, l in ipairs(lines(out)) do
      local cf = l:match("^(%S+)  ")
      count[cf] = (count[cf] or 0) + 1
    end
    -- coding: layer 1 at v1..3, layers 2 and 3 at v1; raw layer 0
    assert.same({ neural_weights = 6, expert_config = 1, checkpoints = 2 }, count)
    assert.matches("\nneural_weights  coding/1/v2  shape 8x12  96%+8 floats  ", "\n" .. out)
    code, out = run("dump", db, "--cf", "expert_config", "--json")
    assert.equal(0, code)
    local l = lines(out)
    assert.equal(1, #l)
    local rec = cjson.decode(l[1])
    assert.equal("expert_config", rec.cf)
    assert.equal("coding", rec.key)
    assert.same({ 12, 8, 6, 4 }, rec.architecture)
    assert_fails(2, "%-%-cf must be one of neural_weights, expert_config, checkpoints, system_state, metrics, "
                 .. "got 'nope'", run("dump", db, "--cf", "nope"))
  end)

  it("checkpoint create | restore | delete and delete-expert", function()
    local before = C.store_bytes(db, "coding", 1)
    local code, out, err = run("checkpoint", "create", db, "--step", "12", "--system-version", "9.9", "--json")
    assert.equal(0, code, err)
    local made = cjson.decode(out)
    assert.equal(12, made.step)
    assert.equal("9.9", made.system_version)
    assert.equal(4, made.pins)
    do
      local s <close> = assert(synaptic.open(db))
      s:put_weights("coding", 1, helpers.weights(96, 77), helpers.weights(8, 78), { shape = { 8, 12 } })
    end
    assert.not_equal(before, C.store_bytes(db, "coding", 1))
    code, out = run("checkpoint", "restore", db, made.id)
    assert.equal(0, code)
    assert.matches("^restored checkpoint " .. made.id:gsub("%p", "%%%0") .. " %(.-, 4 layers%)\n$", out)
    assert.equal(before, C.store_bytes(db, "coding", 1))
    code, out = run("checkpoint", "delete", db, made.id)
    assert.equal(0, code)
    assert.equal("deleted checkpoint " .. made.id .. "\n", out)
    assert_fails(1, "^synaptic: no checkpoint '" .. made.id:gsub("%p", "%%%0") .. "' in ", run("checkpoint", "delete", db, made.id))
    assert_fails(2, "%-%-step must be an integer >= 0, got '%-1'", run("checkpoint", "create", db, "--step=-1"))

    code, out = run("delete-expert", db, "raw")
    assert.equal(0, code)
    assert.matches("^deleted expert raw", out)
    assert.is_nil(C.store_bytes(db, "raw", 0))
    assert_fails(1, "^synaptic: no expert 'raw' in .* %(nothing to delete%)$", run("delete-expert", db, "raw"))
  end)
end)
