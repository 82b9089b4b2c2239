-- The `synaptic` command: every command through the real bin/synaptic in a
-- subprocess (exit codes, stdout/stderr, --json), and cli.run() in-process.
-- The safetensors module: 81-safetensors_spec. Export and import: 82-cli_transfer_spec.
local synaptic = require "synaptic"
local cjson = require "cjson"
local cli = require "synaptic.cli"
local helpers = require "helpers"
local C = require "cli_run"

local write_file = helpers.write_file
local slurp, run, lines, assert_fails = C.slurp, C.run, C.lines, C.assert_fails
local store_bytes, snapshot, make_store, ARCH = C.store_bytes, C.snapshot, C.make_store, C.ARCH
local errfile, ROOT, BIN, ENV = C.errfile, C.ROOT, C.BIN, C.ENV
local q = helpers.shq

describe("synaptic command", function()
  local root, db, cp1, cp2

  setup(function()
    root = helpers.tmpdir("cli")
    db = root .. "/db"
    cp1, cp2 = make_store(db)
  end)

  teardown(function()
    os.remove(errfile)
    helpers.cleanup()
  end)

  describe("arguments", function()
    it("prints help for the program and for each command, exit 0", function()
      local code, out, err = run("--help")
      assert.equal(0, code)
      assert.equal("", err)
      for _, c in ipairs { "info", "checkpoints", "metrics", "verify", "compact", "backup", "restore",
                           "export", "import", "serve", "demo" } do
        assert.matches("\n%s+" .. c .. "%s", out)
      end
      code, out = run("export", "--help")
      assert.equal(0, code)
      assert.matches("Usage: synaptic export", out)
      assert.matches("<store> <expert> <file>", out)
      code, out = run("restore", "-h")
      assert.equal(0, code)
      assert.matches("%-%-force", out)
    end)

    it("prints the version", function()
      local code, out = run("--version")
      assert.equal(0, code)
      assert.equal("synaptic " .. synaptic.version .. "\n", out)
    end)

    it("exits 2 with one line on usage errors", function()
      assert_fails(2, nil, run("frob", db))
      assert_fails(2, "did you mean 'info'", run("infoo", db))
      assert_fails(2, nil, run())
      assert_fails(2, "missing argument", run("info"))
      assert_fails(2, nil, run("info", db, "extra"))
      assert_fails(2, "%-%-id", run("restore", root .. "/x", root .. "/bk", "--id", "abc"))
      assert_fails(2, nil, run("export", db, "coding", root .. "/x.st", "--version", "1", "--checkpoint", cp1))
    end)

    it("exits 1 with a clear line when the store is missing or not a store", function()
      assert_fails(1, "no store at '.*/nope'", run("info", root .. "/nope"))
      assert_fails(1, "no store at", run("verify", root .. "/nope"))
      assert_fails(1, "no store at", run("compact", root .. "/nope"))
      assert.is_nil(io.open(root .. "/nope/CURRENT"))   -- compact did not create one
      local plain = helpers.tmpdir("plain")
      write_file(plain .. "/notes.txt", "hello")
      assert_fails(1, "not a synaptic store", run("checkpoints", plain))
    end)

    it("serve: two processes on loopback sync writes made before they started", function()
      local a, b = helpers.tmpdir("serve-a"), helpers.tmpdir("serve-b")
      do
        local sa = assert(synaptic.open(a))
        sa:put_weights("served", 0, { 1, 2, 3 }, { 0.5 })
        sa:close()
        local sb = assert(synaptic.open(b))
        sb:put_config { expert_id = "served", domain = "coding", parameter_count = 3,
                        learning_rate = 0.1, architecture = { 3 } }
        sb:close()
      end
      -- A listens on an ephemeral port and prints it first; B connects to it.
      -- Both run until each has the other's write, then end on SIGINT.
      local pa, apid = C.spawn(a .. ".err", "serve", a, "--listen", "tcp://127.0.0.1:0", "--seconds", "60",
                               "--heartbeat", "0.2")
      local address = pa:read("l")
      assert.matches("^tcp://127%.0%.0%.1:%d+$", address)
      local pb, bpid = C.spawn(b .. ".err", "serve", b, "--peer", address, "--seconds", "60",
                               "--heartbeat", "0.2", "--json")
      local function synced()
        local sa <close> = assert(synaptic.open(a, { read_only = true }))
        local sb <close> = assert(synaptic.open(b, { read_only = true }))
        return sa:get_config("served") ~= nil and sb:get_weights("served", 0) ~= nil
      end
      C.wait_until(synced, "A and B have each other's writes")
      os.execute("kill -INT " .. bpid)
      local out = pb:read("a")
      local _, bhow, code = pb:close()
      os.execute("kill -INT " .. apid)
      local rest = pa:read("a")
      local _, how, acode = pa:close()
      assert.equal("exit", how)
      assert.equal(0, acode, slurp(a .. ".err"))
      os.remove(a .. ".err")
      assert.equal("exit", bhow)
      assert.equal(0, code, slurp(b .. ".err"))
      os.remove(b .. ".err")
      local first, last = out:match("^([^\n]*)\n(.*)$")
      assert.is_equal(cjson.null, cjson.decode(first).address)
      local report = cjson.decode(last)
      assert.equal("SIGINT", report.stopped_by)
      assert.is_true(report.stats.weights_received >= 1)
      assert.is_true(report.stats.configs_sent >= 1)
      assert.matches("stopped by SIGINT", rest)
      assert.matches("weights_sent%s+%d+", rest)
      local sa, sb = assert(synaptic.open(a)), assert(synaptic.open(b))
      assert.equal(sa:get_weights("served", 0):tobytes(), sb:get_weights("served", 0):tobytes())
      assert.equal("coding", sa:get_config("served").domain)
      sa:close(); sb:close()
    end)

    it("serve: bad arguments and an insecure listen fail with one line", function()
      assert_fails(2, "%-%-seconds must be a positive number", run("serve", db, "--seconds", "abc"))
      assert_fails(1, "no store at", run("serve", root .. "/nope", "--seconds", "1"))
      assert_fails(1, "without CURVE", run("serve", db, "--listen", "tcp://0.0.0.0:0", "--seconds", "1"))
      assert_fails(1, "listen must be an endpoint", run("serve", db, "--listen", "nonsense", "--seconds", "1"))
    end)

    it("runs from the source tree without LUA_PATH (the launcher finds ../lua and ../build)", function()
      if not io.open(ROOT .. "/build/synaptic/core.so") then return pending("no build/") end
      local p = io.popen("LUA_PATH=';;' LUA_CPATH=';;' " .. q(BIN) .. " checkpoints " .. q(db) .. " --json 2>&1")
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, out)
      assert.equal(2, #cjson.decode(out).checkpoints)
    end)
  end)

  describe("info", function()
    it("shows storage and every expert's layers", function()
      local code, out, err = run("info", db)
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.matches("checkpoints%s+2", out)
      assert.matches("experts%s+2", out)
      assert.matches("coding: domain coding, architecture 12%-8%-6%-4, 186 parameters in 3 layers", out)
      assert.matches("raw: 4 parameters in 1 layer", out)
      -- layer 1: latest version 3, versions 1-3, shape 8x12, 104 parameters
      assert.matches("\n  1%s+3%s+1%-3%s+8x12%s+104 ", out)
    end)

    it("--json gives the same facts as the API, and only JSON", function()
      local code, out, err = run("info", db, "--json")
      assert.equal(0, code, err)
      local t = cjson.decode(out)
      local s <close> = assert(synaptic.open(db, { read_only = true }))
      local st = s:storage_stats()
      assert.equal(st.weight_records, t.storage.weight_records)
      assert.equal(st.checkpoint_count, t.storage.checkpoint_count)
      assert.equal(synaptic.version, t.synaptic_version)
      assert.equal(2, #t.experts)
      local coding, raw = t.experts[1], t.experts[2]
      assert.equal("coding", coding.id)
      assert.equal("coding", coding.config.domain)
      assert.equal(186, coding.parameter_count)
      assert.equal(3, #coding.layers)
      assert.same({ 1, 2, 3 }, coding.layers[1].versions)
      assert.equal(3, coding.layers[1].latest)
      assert.same({ 8, 12 }, coding.layers[1].shape)
      assert.equal(96, coding.layers[1].weights)
      assert.equal(8, coding.layers[1].biases)
      assert.equal("raw", raw.id)
      assert.equal(cjson.null, raw.config)
      assert.equal(0, raw.layers[1].layer)
      assert.equal(cjson.null, raw.layers[1].shape)
      assert.equal(0, raw.layers[1].biases)
    end)
  end)

  describe("checkpoints", function()
    it("lists checkpoints oldest first with ISO times", function()
      local code, out, err = run("checkpoints", db)
      assert.equal(0, code, err)
      local l = lines(out)
      assert.equal(3, #l)
      assert.matches("^" .. cp1:gsub("%-", "%%-") .. "%s+%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ%s+1%.0%s+4%s+1$", l[2])
      assert.matches("^" .. cp2:gsub("%-", "%%-") .. "%s+%S+Z%s+1%.1%s+4%s+0$", l[3])
    end)

    it("--json has ids, times, versions and pins", function()
      local code, out = run("checkpoints", "--json", db)
      assert.equal(0, code)
      local t = cjson.decode(out)
      local s <close> = assert(synaptic.open(db, { read_only = true }))
      local c1 = s:get_checkpoint(cp1)
      assert.equal(2, #t.checkpoints)
      assert.equal(cp1, t.checkpoints[1].id)
      assert.equal(cp2, t.checkpoints[2].id)
      assert.equal("1.0", t.checkpoints[1].system_version)
      assert.near(c1.created_at, t.checkpoints[1].created_at, 1e-3)
      assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(c1.created_at)), t.checkpoints[1].created_at_iso)
      assert.equal(4, t.checkpoints[1].pin_count)
      assert.equal(1, t.checkpoints[1].expert_count)
      assert.equal(4, #t.checkpoints[1].pins)
    end)

    it("says so when there are none", function()
      local empty = helpers.tmpdir("empty") .. "/db"
      assert(synaptic.open(empty)):close()
      local code, out, err = run("checkpoints", empty)
      assert.equal(0, code, err)
      assert.matches("no checkpoints", out)
      code, out = run("checkpoints", empty, "--json")
      assert.equal(0, code)
      assert.matches('"checkpoints":%[%]', out)
    end)
  end)

  describe("verify", function()
    it("exits 0 on a healthy store", function()
      local code, out, err = run("verify", db)
      assert.equal(0, code, err)
      assert.matches("^ok: %d+ records verified, no problems\n$", out)
      code, out = run("verify", db, "--json")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.is_true(t.ok)
      assert.is_true(t.records > 0)
      assert.matches('"problems":%[%]', out)
    end)

    it("exits 1 with one line on a damaged store", function()
      local bad = helpers.tmpdir("damaged") .. "/db"
      assert(os.execute("cp -r " .. q(db) .. " " .. q(bad)))
      do   -- move everything from the write-ahead log into table files
        local s <close> = assert(synaptic.open(bad))
        assert(s:compact())
      end
      local p = io.popen("ls " .. q(bad) .. "/*.sst")
      local n = 0
      for f in p:lines() do
        local h = assert(io.open(f, "r+b"))
        h:seek("set", 20)
        h:write("\255\255\255\255")
        h:close()
        n = n + 1
      end
      p:close()
      assert.is_true(n > 0)
      local code, out, err = run("verify", bad, "--json")
      assert.equal(1, code)
      local l = lines(err)
      assert.equal(1, #l)
      assert.matches("^synaptic: ", l[1])
      if out ~= "" then assert.is_false(cjson.decode(out).ok) end
    end)

    it("draws progress only on a terminal", function()
      local code, out = run("verify", db)
      assert.equal(0, code)
      assert.not_matches("verifying", out)
      if not os.execute("command -v script >/dev/null 2>&1") then return pending("no script(1)") end
      local p = io.popen("script -qec " .. q(ENV .. q(BIN) .. " verify " .. q(db)) .. " /dev/null")
      local tty = p:read("a")
      p:close()
      assert.matches("verifying", tty)
      assert.matches("\27%[K", tty)
      assert.matches("ok: %d+ records verified", tty)
    end)
  end)

  describe("compact, backup and restore", function()
    it("compacts and keeps every record", function()
      local copy = helpers.tmpdir("compact") .. "/db"
      assert(os.execute("cp -r " .. q(db) .. " " .. q(copy)))
      local before = snapshot(copy)
      local code, out, err = run("compact", copy)
      assert.equal(0, code, err)
      assert.matches("^compacted .* %-> ", out)
      assert.equal(before, snapshot(copy))
      assert.equal(0, (run("verify", copy)))
    end)

    it("backs up, restores, and refuses to overwrite without --force", function()
      local dir = helpers.tmpdir("bk")
      local work = dir .. "/work"
      assert(os.execute("cp -r " .. q(db) .. " " .. q(work)))
      local code, out, err = run("backup", work, dir .. "/backups")
      assert.equal(0, code, err)
      assert.equal("1\n", out)
      -- a later write, then a second backup
      do
        local s <close> = assert(synaptic.open(work))
        s:put_weights("late", 1, { 7, 8 }, { 9 })
      end
      code, out = run("backup", work, dir .. "/backups", "--json")
      assert.equal(0, code)
      local b = cjson.decode(out)
      assert.equal(2, b.id)
      assert.equal(dir .. "/backups", b.dir)
      assert.is_true(b.size > 0 and b.files > 0 and b.timestamp > 0)

      -- latest backup into a fresh path
      code, out, err = run("restore", dir .. "/r2", dir .. "/backups")
      assert.equal(0, code, err)
      assert.matches("^restored backup 2 ", out)
      assert.equal(snapshot(work), snapshot(dir .. "/r2"))

      -- backup 1 over a non-empty path: refused, then forced
      local before = snapshot(dir .. "/r2")
      assert_fails(1, "not empty.*%-%-force", run("restore", dir .. "/r2", dir .. "/backups", "--id", "1"))
      assert.equal(before, snapshot(dir .. "/r2"))
      code, out, err = run("restore", dir .. "/r2", dir .. "/backups", "--id", "1", "--force")
      assert.equal(0, code, err)
      assert.equal(snapshot(db), snapshot(dir .. "/r2"))
      assert.is_nil(store_bytes(dir .. "/r2", "late", 1))

      assert_fails(1, "no backup 9 .*1, 2", run("restore", dir .. "/r3", dir .. "/backups", "--id", "9"))
      assert_fails(1, nil, run("restore", dir .. "/r4", dir .. "/nobackups"))
      assert.is_nil(io.open(dir .. "/r4/CURRENT"))
    end)

    it("fails with one line when the backup directory cannot be made", function()
      local dir = helpers.tmpdir("bkfail")
      write_file(dir .. "/file", "x")
      assert_fails(1, nil, run("backup", db, dir .. "/file/sub"))
    end)
  end)

  describe("demo", function()
    it("runs examples/persistence_demo.lua and exits with its status", function()
      local dir = helpers.tmpdir("demo")
      local code, out, err = run("demo", dir .. "/store")
      assert.equal(0, code, err)
      assert.is_true(#out > 0)
      assert.is_not_nil(io.open(dir .. "/store/CURRENT"))
    end)

    it("will not replace a directory that holds other files", function()
      local dir = helpers.tmpdir("demo2")
      write_file(dir .. "/precious", "keep me")
      assert_fails(1, "not empty", run("demo", dir))
      assert.equal("keep me", slurp(dir .. "/precious"))
    end)
  end)
end)

describe("cli.run in-process", function()
  local root, db

  setup(function()
    root = helpers.tmpdir("cli-inproc")
    db = root .. "/db"
    make_store(db)
  end)

  teardown(function() helpers.cleanup() end)

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

  it("returns exit codes instead of exiting", function()
    local code, out = capture { "--help" }
    assert.equal(0, code)
    assert.matches("Usage: synaptic", out)
    code, out = capture { "verify", db, "--json" }
    assert.equal(0, code)
    assert.is_true(cjson.decode(out).ok)
    local err
    code, out, err = capture { "frob" }
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("^synaptic: unknown command 'frob'", err)
    code, out, err = capture { "info", root .. "/missing" }
    assert.equal(1, code)
    assert.matches("^synaptic: no store at", err)
  end)
end)
