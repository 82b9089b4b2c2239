-- The `synaptic` command: every command through the real bin/synaptic in a
-- subprocess (exit codes, stdout/stderr, --json), the safetensors reader and
-- writer, and cli.run() in-process.
local synaptic = require "synaptic"
local cjson = require "cjson"
local cli = require "synaptic.cli"
local helpers = require "helpers"

local q = helpers.shq

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

local write_file = helpers.write_file

local ROOT = helpers.ROOT
local BIN = ROOT .. "/bin/synaptic"

local ENV = helpers.child_env()

local errfile = os.tmpname()

-- Runs `synaptic ARGS...`; returns exit code, stdout, stderr.
local function run(...)
  local words = {}
  for i, a in ipairs { ... } do words[i] = q(a) end
  local p = io.popen(ENV .. q(BIN) .. " " .. table.concat(words, " ") .. " 2>" .. q(errfile))
  local out = p:read("a")
  local _, how, code = p:close()
  assert.equal("exit", how, "killed by a signal")
  return code, out, slurp(errfile) or ""
end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- A failure: exit code, nothing on stdout, exactly one "synaptic: " line.
local function assert_fails(code_wanted, pattern, code, out, err)
  assert.equal(code_wanted, code, err)
  assert.equal("", out)
  local l = lines(err)
  assert.equal(1, #l, err)
  assert.matches("^synaptic: ", l[1])
  if pattern then assert.matches(pattern, l[1]) end
end

-- path_or_store: a path (opened read-only for this call) or an open store.
local function store_bytes(path_or_store, expert, layer, version)
  local s <close> = type(path_or_store) == "string" and assert(synaptic.open(path_or_store, { read_only = true }))
  local w, b, info = (s or path_or_store):get_weights(expert, layer, version)
  if not w then return nil end
  return w:tobytes(), b:tobytes(), info
end

-- Everything about a store's weights, for "unchanged" comparisons.
local function snapshot(path)
  local s <close> = assert(synaptic.open(path, { read_only = true }))
  local t = {}
  for _, e in ipairs(s:list_experts()) do
    for layer = 0, 8 do
      for _, v in ipairs(s:weight_versions(e, layer)) do
        local w, b = s:get_weights(e, layer, v)
        t[#t + 1] = ("%s/%d/%d/%s/%s"):format(e, layer, v, w:tobytes(), b:tobytes())
      end
    end
  end
  t[#t + 1] = "checkpoints=" .. table.concat(s:list_checkpoints(), ",")
  return table.concat(t, "\n")
end

local ARCH = { 12, 8, 6, 4 }

-- A store with: "coding" (3 layers {out, in}, layer 1 at versions 1..3,
-- a config), "raw" (layer 0, no shape, no biases, no config), two
-- checkpoints.
local function make_store(path)
  local s <close> = assert(synaptic.open(path))
  for layer = 1, #ARCH - 1 do
    local n_in, n_out = ARCH[layer], ARCH[layer + 1]
    s:put_weights("coding", layer, helpers.weights(n_in * n_out, layer), helpers.weights(n_out, 10 + layer),
                  { shape = { n_out, n_in } })
  end
  s:put_config { expert_id = "coding", domain = "coding", parameter_count = 186,
                 learning_rate = 0.01, architecture = ARCH }
  s:put_weights("raw", 0, { 1.5, -2.25, 3e-7, 0 }, {})
  local cp1 = s:create_checkpoint { system_version = "1.0",
    expert_states = { { expert_id = "coding", activation_count = 1, success_rate = 0.5 } },
    global_metrics = { total_requests = 1 } }
  s:put_weights("coding", 1, helpers.weights(12 * 8, 21), helpers.weights(8, 22), { shape = { 8, 12 } })
  s:put_weights("coding", 1, helpers.weights(12 * 8, 31), helpers.weights(8, 32), { shape = { 8, 12 } })
  local cp2 = s:create_checkpoint { system_version = "1.1", expert_states = {}, global_metrics = {} }
  return cp1, cp2
end

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
      for _, c in ipairs { "info", "checkpoints", "verify", "compact", "backup", "restore",
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
      -- A listens on an ephemeral port and prints it first; B connects to it
      local pa = io.popen(ENV .. q(BIN) .. " serve " .. q(a) ..
                          " --listen tcp://127.0.0.1:0 --seconds 5 --heartbeat 0.2 2>" .. q(a .. ".err"))
      local address = pa:read("l")
      assert.matches("^tcp://127%.0%.0%.1:%d+$", address)
      local code, out = run("serve", b, "--peer", address, "--seconds", "3", "--heartbeat", "0.2", "--json")
      local rest = pa:read("a")
      local _, how, acode = pa:close()
      assert.equal("exit", how)
      assert.equal(0, acode, slurp(a .. ".err"))
      os.remove(a .. ".err")
      assert.equal(0, code)
      local first, last = out:match("^([^\n]*)\n(.*)$")
      assert.is_equal(cjson.null, cjson.decode(first).address)
      local report = cjson.decode(last)
      assert.is_true(report.stats.weights_received >= 1)
      assert.is_true(report.stats.configs_sent >= 1)
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

  describe("export and import", function()
    local function read_header(path)
      local data = assert(slurp(path))
      local n = string.unpack("<I8", data)
      return cjson.decode(data:sub(9, 8 + n)), n, data
    end

    it("writes a safetensors file with every layer at its latest version", function()
      local file = helpers.tmpdir("exp") .. "/coding.safetensors"
      local code, out, err = run("export", db, "coding", file)
      assert.equal(0, code, err)
      assert.matches("^exported coding %(3 layers", out)
      local h, n, data = read_header(file)
      assert.equal(0, (8 + n) % 8)
      assert.equal("synaptic", h.__metadata__.format)
      assert.equal("coding", h.__metadata__.expert_id)
      assert.same({ ["1"] = 3, ["2"] = 1, ["3"] = 1 }, cjson.decode(h.__metadata__.versions))
      assert.same({ 8, 12 }, h["layer1.weight"].shape)
      assert.same({ 8 }, h["layer1.bias"].shape)
      assert.same({ 4, 6 }, h["layer3.weight"].shape)
      assert.equal("F32", h["layer2.weight"].dtype)
      local w, b = store_bytes(db, "coding", 1)
      local o = h["layer1.weight"].data_offsets
      assert.equal(w, data:sub(8 + n + o[1] + 1, 8 + n + o[2]))
      o = h["layer1.bias"].data_offsets
      assert.equal(b, data:sub(8 + n + o[1] + 1, 8 + n + o[2]))
    end)

    it("exports --version N and the versions a --checkpoint pins", function()
      local dir = helpers.tmpdir("expv")
      local code, out = run("export", db, "coding", dir .. "/v1.st", "--version", "1", "--json")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.equal(dir .. "/v1.st", t.file)
      assert.equal("coding", t.expert)
      assert.equal(3, #t.layers)
      assert.equal(1, t.layers[1].version)
      assert.same({ 8, 12 }, t.layers[1].shape)
      local h, n, data = read_header(dir .. "/v1.st")
      assert.equal(#data, t.bytes)
      local w = store_bytes(db, "coding", 1, 1)
      local o = h["layer1.weight"].data_offsets
      assert.equal(w, data:sub(8 + n + o[1] + 1, 8 + n + o[2]))

      code = run("export", db, "coding", dir .. "/cp.st", "--checkpoint", cp1)
      assert.equal(0, code)
      h = read_header(dir .. "/cp.st")
      assert.same({ ["1"] = 1, ["2"] = 1, ["3"] = 1 }, cjson.decode(h.__metadata__.versions))

      assert_fails(1, "layer 2 has no version 2", run("export", db, "coding", dir .. "/v2.st", "--version", "2"))
      assert.is_nil(io.open(dir .. "/v2.st"))
      assert_fails(1, "no weights", run("export", db, "nobody", dir .. "/n.st"))
      assert_fails(1, "no checkpoint", run("export", db, "coding", dir .. "/c.st", "--checkpoint", "no-such-id"))
      assert_fails(1, "cannot write", run("export", db, "coding", dir .. "/missing/dir/x.st"))
    end)

    it("round-trips export -> import bit for bit, shapes included", function()
      local dir = helpers.tmpdir("rt")
      local work = dir .. "/db"
      assert(os.execute("cp -r " .. q(db) .. " " .. q(work)))
      for _, e in ipairs { "coding", "raw" } do
        local file = dir .. "/" .. e .. ".safetensors"
        assert.equal(0, (run("export", work, e, file)))
        local code, out, err = run("import", work, e .. "-copy", file)
        assert.equal(0, code, err)
        assert.matches("^imported .* into " .. e .. "%-copy: layer %d v1", out)
      end
      local s = assert(synaptic.open(work, { read_only = true }))
      for layer = 1, 3 do
        local w1, b1, i1 = store_bytes(s, "coding", layer)
        local w2, b2, i2 = store_bytes(s, "coding-copy", layer)
        assert.equal(w1, w2)
        assert.equal(b1, b2)
        assert.same(i1.shape, i2.shape)
        assert.equal(1, i2.version)
      end
      local w1, b1, i1 = store_bytes(s, "raw", 0)
      local w2, b2, i2 = store_bytes(s, "raw-copy", 0)
      assert.equal(w1, w2)
      assert.equal("", b2)
      assert.equal(b1, b2)
      assert.is_nil(i1.shape)
      assert.is_nil(i2.shape)
      s:close()

      -- importing into the same expert adds versions
      local code, out = run("import", work, "coding", dir .. "/coding.safetensors", "--json")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.same({ layer = 1, version = 4 }, t.layers[1])
      assert.same({ layer = 2, version = 2 }, t.layers[2])
      assert.equal(store_bytes(work, "coding", 1, 3), (store_bytes(work, "coding", 1, 4)))
    end)

    it("imports into a new store only with --create", function()
      local dir = helpers.tmpdir("create")
      assert.equal(0, (run("export", db, "coding", dir .. "/c.st")))
      assert_fails(1, "no store at", run("import", dir .. "/new", "coding", dir .. "/c.st"))
      assert.is_nil(io.open(dir .. "/new/CURRENT"))
      local code, _, err = run("import", dir .. "/new", "coding", dir .. "/c.st", "--create")
      assert.equal(0, code, err)
      assert.equal((store_bytes(db, "coding", 2)), (store_bytes(dir .. "/new", "coding", 2)))
    end)

    it("is readable by Python (json + numpy, or the standard library)", function()
      if not os.execute("command -v python3 >/dev/null 2>&1") then return pending("no python3") end
      local dir = helpers.tmpdir("py")
      local file = dir .. "/coding.safetensors"
      assert.equal(0, (run("export", db, "coding", file)))
      -- The reference loader's rules: '{' first, offsets tile the data.
      write_file(dir .. "/read.py", [[
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
assert 0 < n <= len(data) - 8 and data[8:9] == b"{"
header = json.loads(data[8:8 + n])
body = data[8 + n:]
meta = header.pop("__metadata__", {})
assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
try:
    import numpy
except ImportError:
    numpy = None
pos, out = 0, {}
for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    b, e = t["data_offsets"]
    assert t["dtype"] == "F32" and b == pos and e <= len(body)
    count = 1
    for d in t["shape"]:
        count *= d
    assert e - b == 4 * count
    raw = body[b:e]
    if numpy is not None:
        a = numpy.frombuffer(raw, dtype="<f4").reshape(t["shape"])
        shape, raw = list(a.shape), a.astype("<f4").tobytes()
    else:
        shape = t["shape"]
        raw = struct.pack("<%df" % count, *struct.unpack("<%df" % count, raw))
    out[name] = {"shape": shape, "hex": raw.hex()}
    pos = e
assert pos == len(body)
print(json.dumps({"numpy": numpy is not None, "meta": meta, "tensors": out}))
]])
      local p = io.popen("python3 " .. q(dir .. "/read.py") .. " " .. q(file) .. " 2>&1")
      local got = p:read("a")
      assert.is_true(p:close(), got)
      local t = cjson.decode(got)
      assert.equal("coding", t.meta.expert_id)
      local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
      local s <close> = assert(synaptic.open(db, { read_only = true }))
      for layer = 1, 3 do
        local w, b, info = store_bytes(s, "coding", layer)
        assert.same(info.shape, t.tensors["layer" .. layer .. ".weight"].shape)
        assert.equal(hex(w), t.tensors["layer" .. layer .. ".weight"].hex)
        assert.equal(hex(b), t.tensors["layer" .. layer .. ".bias"].hex)
      end
    end)

    describe("a malformed file", function()
      local dir, work, good

      -- A header and body built by hand.
      local function forge(header_json, body, n)
        return string.pack("<I8", n or #header_json) .. header_json .. body
      end
      local FOUR = string.pack("<ffff", 1, 2, 3, 4)

      setup(function()
        dir = helpers.tmpdir("bad")
        work = dir .. "/db"
        assert(os.execute("cp -r " .. q(db) .. " " .. q(work)))
        assert.equal(0, (run("export", work, "coding", dir .. "/good.st")))
        good = slurp(dir .. "/good.st")
      end)

      local cases = {
        { "an empty file", function() return "" end, "too short" },
        { "a truncated file", function() return good:sub(1, #good - 5) end, "out of range" },
        { "a truncated header", function() return good:sub(1, 40) end, "header length" },
        { "a header length past the end", function()
            return string.pack("<I8", 1 << 40) .. good:sub(9) end, "header length" },
        { "a negative header length", function()
            return string.pack("<i8", -8) .. good:sub(9) end, "header length" },
        { "a zero header length", function() return string.pack("<I8", 0) .. good:sub(9) end, "header length" },
        { "bad JSON", function()
            return forge('{"layer1.weight": {"dtype": "F32", ', FOUR) end, "not valid JSON" },
        { "a JSON array header", function() return forge('[1, 2]  ', "") end, "not a JSON object" },
        { "a wrong dtype", function()
            return forge('{"layer1.weight":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}', FOUR) end,
          "dtype F16" },
        { "offsets out of range", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}', FOUR) end,
          "out of range" },
        { "decreasing offsets", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}', FOUR) end,
          "data_offsets" },
        { "overlapping tensors", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},' ..
                         '"layer1.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', FOUR) end,
          "overlap" },
        { "a byte count that disagrees with the shape", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', FOUR) end,
          "do not match shape" },
        { "a huge shape", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[4294967296,4294967296],' ..
                         '"data_offsets":[0,16]}}', FOUR) end, "larger than the file" },
        { "a fractional shape", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}}', FOUR) end,
          "shape%[1%]" },
        { "unused bytes", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', FOUR) end,
          "belong to no tensor" },
        { "non-string metadata", function()
            return forge('{"__metadata__":{"a":1},"layer1.weight":{"dtype":"F32","shape":[4],' ..
                         '"data_offsets":[0,16]}}', FOUR) end, "__metadata__" },
        { "an unknown tensor name", function()
            return forge('{"embedding":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', FOUR) end,
          "unexpected tensor 'embedding'" },
        { "a bias without a weight", function()
            return forge('{"layer1.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', FOUR) end,
          "no layer1.weight" },
        { "a scalar weight", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}',
                         string.pack("<f", 1)) end, "scalar" },
        { "a NaN in a later layer", function()
            return forge('{"layer1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
                         '"layer2.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
                         string.pack("<ffff", 1, 2, 0 / 0, 4)) end, "NaN" },
      }

      for _, c in ipairs(cases) do
        it(c[1] .. " fails with one line and leaves the store unchanged", function()
          local file = dir .. "/case.st"
          write_file(file, c[2]())
          local before = snapshot(work)
          assert_fails(1, c[3], run("import", work, "coding", file))
          assert.equal(before, snapshot(work))
        end)
      end

      it("a missing file fails with one line", function()
        assert_fails(1, "absent%.st", run("import", work, "coding", dir .. "/absent.st"))
      end)
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

describe("cli.safetensors", function()
  local st = cli.safetensors

  it("encodes deterministically with an aligned header and decodes back", function()
    local w = synaptic.floats { 1, -2, 3.5, 1e-30, 0, 6 }
    local b = synaptic.floats { 0.5, 0.25 }
    local tensors = { { name = "layer1.weight", shape = { 2, 3 }, data = w },
                      { name = "layer1.bias", shape = { 2 }, data = b } }
    local data = st.encode(tensors, { format = "synaptic", expert_id = "x" })
    assert.equal(data, st.encode(tensors, { expert_id = "x", format = "synaptic" }))
    local n = string.unpack("<I8", data)
    assert.equal(0, n % 8)
    assert.equal(8 + n + 32, #data)
    local t = assert(st.decode(data))
    assert.same({ "layer1.weight", "layer1.bias" }, t.order)
    assert.same({ 2, 3 }, t.tensors["layer1.weight"].shape)
    assert.equal(w:tobytes(), t.tensors["layer1.weight"].bytes)
    assert.equal(b:tobytes(), t.tensors["layer1.bias"].bytes)
    assert.same({ format = "synaptic", expert_id = "x" }, t.metadata)
  end)

  it("handles empty tensors and no metadata", function()
    local data = st.encode { { name = "a", shape = { 1 }, data = synaptic.floats { 7 } },
                             { name = "b", shape = { 0 }, data = "" } }
    local t = assert(st.decode(data))
    assert.same({}, t.metadata)
    assert.equal("", t.tensors.b.bytes)
    assert.same({ 0 }, t.tensors.b.shape)
  end)

  it("returns nil and a reason for malformed input, never raises", function()
    local ok_data = st.encode { { name = "a", shape = { 2 }, data = synaptic.floats { 1, 2 } } }
    for cut = 0, #ok_data - 1 do
      local t, err = st.decode(ok_data:sub(1, cut))
      assert.is_nil(t)
      assert.is_string(err)
      assert.not_matches("\n", err)
    end
    -- every single-byte change either decodes or gives a reason
    for i = 1, #ok_data do
      local mutated = ok_data:sub(1, i - 1) .. string.char((ok_data:byte(i) + 101) % 256) .. ok_data:sub(i + 1)
      local ok, t, err = pcall(st.decode, mutated)
      assert.is_true(ok, t)
      assert.is_true(t ~= nil or type(err) == "string")
    end
  end)
end)
