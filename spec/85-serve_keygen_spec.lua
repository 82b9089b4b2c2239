-- synaptic keygen and synaptic serve under CURVE, through the real
-- bin/synaptic in subprocesses: an authorized peer syncs both ways, an
-- unauthorized key gets nothing and changes nothing, and the first SIGINT
-- ends serve cleanly with its stats.
local synaptic = require "synaptic"
local cjson = require "cjson"
local helpers = require "helpers"
local C = require "cli_run"

local run, assert_fails, slurp = C.run, C.assert_fails, C.slurp
local BIN, ENV = C.BIN, C.ENV
local q = helpers.shq

local function keygen(path)
  local code, out = run("keygen", path)
  assert.equal(0, code)
  local public = out:match("([^\n]+)\n$")
  assert.equal(40, #public)
  return public
end

local function store_with(path, expert, value)
  local s = assert(synaptic.open(path))
  s:put_weights(expert, 0, { value, value }, { value })
  s:close()
end

local function has(path, expert)
  local s <close> = assert(synaptic.open(path, { read_only = true }))
  return s:get_weights(expert, 0) ~= nil
end

-- Starts `synaptic serve ARGS` in the background: its pid and the files
-- its stdout and stderr go to.
local function start(dir, ...)
  local words = {}
  for i, a in ipairs { ... } do words[i] = q(a) end
  local outf, errf = dir .. "/serve.out", dir .. "/serve.err"
  local p = io.popen(ENV .. q(BIN) .. " serve " .. table.concat(words, " ") .. " >" .. q(outf) ..
                     " 2>" .. q(errf) .. " & echo $!")
  local pid = p:read("l")
  p:close()
  return pid, outf, errf
end

local function wait_for_line(path, n)
  for _ = 1, 600 do
    local text = slurp(path) or ""
    local lines = {}
    for l in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    if #lines >= n then return lines end
    os.execute("sleep 0.05")
  end
  error(("no line %d in %s: %s / %s"):format(n, path, slurp(path) or "", slurp(path:gsub("%.out$", ".err")) or ""))
end

local function alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

-- Whether the process has gone (bounded wait: it closes its store first).
local function wait_exit(pid)
  for _ = 1, 200 do
    if not alive(pid) then return true end
    os.execute("sleep 0.05")
  end
  return false
end

describe("synaptic keygen", function()
  after_each(helpers.cleanup)

  it("writes a keypair only its owner can read and prints the public key last", function()
    local dir = helpers.tmpdir("keygen")
    local public = keygen(dir .. "/k")
    local p = io.popen("stat -c %a " .. q(dir .. "/k"))
    assert.equal("600", p:read("l"))
    p:close()
    local text = slurp(dir .. "/k")
    assert.matches("public = " .. public:gsub("%p", "%%%0"), text)
    assert.matches("\nsecret = %S+", text)
    assert_fails(1, "exists; refusing to overwrite", run("keygen", dir .. "/k"))
    assert.equal(text, slurp(dir .. "/k"))
    local code, out = run("keygen", dir .. "/k", "--force", "--json")
    assert.equal(0, code)
    assert.not_equal(public, cjson.decode(out).public)
  end)
end)

describe("--authorized files", function()
  after_each(helpers.cleanup)

  it("take keys that hold '#', comment lines and trailing comments; refuse anything else", function()
    local keys = require "synaptic.cli.keys"
    local hashed                               -- Z85 keys hold '#' about 38% of the time
    repeat hashed = synaptic.keypair() until hashed:find("#", 1, true)
    local plain = synaptic.keypair()
    local path = helpers.tmpdir("authorized") .. "/list"
    local function write(text) local f = assert(io.open(path, "w")); f:write(text); f:close() end
    write("# the mesh\n\n" .. hashed .. "\n  " .. plain .. "   # the laptop\n")
    assert.same({ hashed, plain }, keys.read_authorized(path))
    write(plain .. "#no blank before the comment\n")
    local ok, err = pcall(keys.read_authorized, path)
    assert.is_false(ok)
    assert.matches("line 1 is not a 40%-character Z85 key", err.msg)
  end)
end)

describe("synaptic serve", function()
  after_each(helpers.cleanup)

  it("under CURVE syncs an authorized peer both ways and gives an unauthorized one nothing", function()
    local dir = helpers.tmpdir("serve-curve")
    local spub, gpub = keygen(dir .. "/server.key"), keygen(dir .. "/good.key")
    keygen(dir .. "/evil.key")
    store_with(dir .. "/s", "server_secret", 1)
    store_with(dir .. "/g", "from_good", 2)
    store_with(dir .. "/x", "poison", 3)
    local pid, outf, errf = start(dir, dir .. "/s", "--listen", "tcp://127.0.0.1:0", "--key", dir .. "/server.key",
                                  "--authorize=" .. gpub, "--heartbeat", "0.2", "--seconds", "60", "--json")
    local address = cjson.decode(wait_for_line(outf, 1)[1]).address
    assert.matches("^tcp://127%.0%.0%.1:%d+$", address, slurp(errf))
    local peer = "--peer=" .. spub .. "@" .. address   -- '=': a key may begin with '-' 
    -- the intruder runs beside the good peer, with a key the server does not
    -- admit; it is up (its first line printed) before the good peer starts
    local xpid, xout = start(helpers.tmpdir("serve-x"), dir .. "/x", peer, "--key", dir .. "/evil.key",
                             "--heartbeat", "0.2", "--seconds", "60", "--json")
    wait_for_line(xout, 1)
    local gpid, gout, gerr = start(helpers.tmpdir("serve-g"), dir .. "/g", peer, "--key", dir .. "/good.key",
                                   "--heartbeat", "0.2", "--seconds", "60", "--json")
    -- until the good peer and the server each hold the other's write
    C.wait_until(function() return has(dir .. "/g", "server_secret") and has(dir .. "/s", "from_good") end,
                 "the good peer and the server synced both ways")
    os.execute("kill -INT " .. gpid)
    local glines = wait_for_line(gout, 2)
    assert.is_true(wait_exit(gpid), slurp(gerr))
    local greport = cjson.decode(glines[2])
    assert.equal("SIGINT", greport.stopped_by)
    assert.is_true(greport.stats.weights_received >= 1)
    os.execute("kill -INT " .. pid)
    os.execute("kill -INT " .. xpid)
    wait_for_line(xout, 2)
    assert.is_true(wait_exit(xpid))
    local lines = wait_for_line(outf, 2)
    assert.is_true(wait_exit(pid))
    local report = cjson.decode(lines[2])
    assert.equal("SIGINT", report.stopped_by)
    assert.is_true(report.stats.weights_received >= 1)
    assert.is_true(report.stats.unauthorized >= 1)
    assert.is_true(has(dir .. "/g", "server_secret"))     -- server -> good peer
    assert.is_true(has(dir .. "/s", "from_good"))         -- good peer -> server
    assert.is_false(has(dir .. "/x", "server_secret"))    -- the intruder got nothing
    assert.is_false(has(dir .. "/s", "poison"))           -- and changed nothing
    assert.is_false(has(dir .. "/g", "poison"))
  end)

  it("reads --authorized again on SIGHUP: a key added gets in, a key removed is shut out", function()
    local dir = helpers.tmpdir("serve-hup")
    local spub, gpub = keygen(dir .. "/server.key"), keygen(dir .. "/good.key")
    local list = dir .. "/authorized"
    local function write_list(text) local f = assert(io.open(list, "w")); f:write(text); f:close() end
    write_list("# nobody yet\n")
    store_with(dir .. "/s", "server_secret", 1)
    store_with(dir .. "/g", "from_good", 2)
    local pid, outf, errf = start(dir, dir .. "/s", "--listen", "tcp://127.0.0.1:0", "--key", dir .. "/server.key",
                                  "--authorized", list, "--heartbeat", "0.2", "--seconds", "60", "--json")
    local address = cjson.decode(wait_for_line(outf, 1)[1]).address
    local peer = "--peer=" .. spub .. "@" .. address
    local gdir = helpers.tmpdir("serve-hup-g")
    local gpid, gout = start(gdir, dir .. "/g", peer, "--key", dir .. "/good.key",
                             "--heartbeat", "0.2", "--seconds", "60", "--json")
    wait_for_line(gout, 1)
    os.execute("sleep 1")
    assert.is_false(has(dir .. "/g", "server_secret"))   -- refused so far
    write_list("# the good peer\n" .. gpub .. "\n")
    os.execute("kill -HUP " .. pid)
    C.wait_until(function() return has(dir .. "/g", "server_secret") and has(dir .. "/s", "from_good") end,
                 "the peer admitted on SIGHUP synced both ways")
    assert.matches("SIGHUP: read .- again: 1 keys admitted %(1 added, 0 revoked%)", slurp(errf))
    assert.is_true(alive(pid))                            -- a reload, not an exit
    -- removed from the file: revoked on the next SIGHUP
    write_list("")
    os.execute("kill -HUP " .. pid)
    C.wait_until(function() return (slurp(errf) or ""):find("0 keys admitted %(0 added, 1 revoked%)") ~= nil end,
                 "the second reload revoked the key")
    os.execute("kill -INT " .. gpid)
    assert.is_true(wait_exit(gpid))
    local s = assert(synaptic.open(dir .. "/g"))
    s:put_weights("after_revoke", 0, { 5 }, {})
    s:close()
    gpid, gout = start(gdir, dir .. "/g", peer, "--key", dir .. "/good.key",
                       "--heartbeat", "0.2", "--seconds", "60", "--json")
    wait_for_line(gout, 1)
    os.execute("sleep 1.5")
    assert.is_false(has(dir .. "/s", "after_revoke"))
    os.execute("kill -INT " .. gpid)
    assert.is_true(wait_exit(gpid))
    -- a list that does not read keeps the keys and says why
    write_list("not a key\n")
    os.execute("kill -HUP " .. pid)
    C.wait_until(function() return (slurp(errf) or ""):find("keys unchanged") ~= nil end, "a bad list is refused")
    os.execute("kill -INT " .. pid)
    local lines = wait_for_line(outf, 2)
    assert.is_true(wait_exit(pid))
    local report = cjson.decode(lines[2])
    assert.equal("SIGINT", report.stopped_by)
    assert.is_true(report.stats.unauthorized >= 1)
  end)

  it("ends on the first SIGINT with its stats (text)", function()
    local dir = helpers.tmpdir("serve-int")
    local pid, outf = start(dir, dir .. "/new", "--create", "--listen", "tcp://127.0.0.1:0")
    assert.matches("^tcp://", wait_for_line(outf, 1)[1])
    os.execute("kill -INT " .. pid)
    local lines = wait_for_line(outf, 13)
    assert.equal("stopped by SIGINT", lines[2])
    assert.matches("^weights_sent%s+0$", lines[3])
    assert.is_true(wait_exit(pid))
  end)

  it("refuses what it cannot do safely, with one line", function()
    local dir = helpers.tmpdir("serve-bad")
    store_with(dir .. "/s", "x", 1)
    assert_fails(1, "no store at .*give %-%-create", run("serve", dir .. "/none", "--seconds", "1"))
    assert.is_nil(io.open(dir .. "/none/CURRENT"))
    assert_fails(1, "without CURVE; give %-%-key", run("serve", dir .. "/s", "--listen", "tcp://0.0.0.0:0", "--seconds", "1"))
    assert_fails(1, "need %-%-key", run("serve", dir .. "/s", "--authorize=" .. synaptic.keypair(), "--seconds", "1"))
    assert_fails(1, "has no public key", run("serve", dir .. "/s", "--key", dir .. "/s/CURRENT", "--seconds", "1"))
    keygen(dir .. "/k")
    assert_fails(1, "PUBLIC@ENDPOINT", run("serve", dir .. "/s", "--key", dir .. "/k", "--peer", "tcp://127.0.0.1:9", "--seconds", "1"))
    assert_fails(1, "%-%-strategy must be", run("serve", dir .. "/s", "--strategy", "coin", "--seconds", "1"))
    assert_fails(1, "%-%-mode must be both, send_only, receive_only",
      run("serve", dir .. "/s", "--mode", "sideways", "--seconds", "1"))
    assert_fails(1, "more %-%-peer than %-%-max%-peers",
      run("serve", dir .. "/s", "--max-peers", "1", "--peer", "tcp://127.0.0.1:9", "--peer", "tcp://127.0.0.1:8", "--seconds", "1"))
    -- an insecure listen beyond loopback is allowed when asked for
    local code, out = run("serve", dir .. "/s", "--listen", "tcp://0.0.0.0:0", "--insecure", "--seconds", "0.3",
                          "--strategy", "merge", "--no-checkpoints", "--max-peers", "3", "--mode", "receive_only")
    assert.equal(0, code)
    assert.matches("^tcp://0%.0%.0%.0:%d+\n", out)
  end)
end)
