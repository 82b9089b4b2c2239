-- Issue 19, the rest of "a neighbour that breaks you" and its wording:
-- temporary files an attacker cannot plant (created exclusively under an
-- unpredictable name), errors that name the function the user called at
-- the user's line, a clock that closes its runtime, and SIGHUP ending
-- `synaptic serve` cleanly with its stats.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local safetensors = require "synaptic.safetensors"
local helpers = require "helpers"
local C = require "cli_run"

local q, slurp = helpers.shq, C.slurp

local function files_in(dir) return helpers.command_lines("ls -A " .. q(dir)) end

describe("temporary files", function()
  after_each(helpers.cleanup)

  it("core.temp_file creates a new file under an unpredictable name beside the path", function()
    local dir = helpers.tmpdir("tmpf")
    local f1, t1 = assert(core.temp_file(dir .. "/out"))
    local f2, t2 = assert(core.temp_file(dir .. "/out", tonumber("600", 8)))
    assert.not_equal(t1, t2)
    assert.matches("^" .. (dir .. "/out.tmp-"):gsub("%p", "%%%0") .. "......$", t1)
    assert.is_true(f1:write("abc") == f1)
    assert.is_true(f1:close())
    assert.is_true(f2:close())
    assert.equal("abc", slurp(t1))
    assert.equal("644", helpers.command_lines("stat -c %a " .. q(t1))[1])
    assert.equal("600", helpers.command_lines("stat -c %a " .. q(t2))[1])
    local f, err = core.temp_file(dir .. "/no/such/dir/out")
    assert.is_nil(f)
    assert.equal("No such file or directory", err)
    assert.has_error(function() core.temp_file(dir .. "/x", 4096) end)
  end)

  it("safetensors.write does not write through a symlink planted at a guessable name", function()
    local dir = helpers.tmpdir("plant")
    local victim = dir .. "/victim"
    helpers.write_file(victim, "precious")
    os.execute(("ln -s %s %s"):format(q(victim), q(dir .. "/w.safetensors.tmp-synaptic")))
    os.execute(("ln -s %s %s"):format(q(victim), q(dir .. "/w.safetensors.tmp")))
    local bytes = string.pack("<ff", 1, 2)
    assert(safetensors.write(dir .. "/w.safetensors", { { name = "x", shape = { 2 }, data = bytes } }))
    assert.equal("precious", slurp(victim))
    local file = assert(safetensors.read(dir .. "/w.safetensors"))
    assert.equal(bytes, file.tensors.x.bytes)
    assert.equal(4, #files_in(dir))       -- victim, two symlinks, the file: no temporary left
  end)

  it("`synaptic report -o` does not write through a symlink planted at FILE.tmp", function()
    local dir = helpers.tmpdir("plant-report")
    local store = dir .. "/s"
    local s = assert(synaptic.open(store))
    s:record_metric("loss", 1.5, 1)
    s:close()
    local victim = dir .. "/victim"
    helpers.write_file(victim, "precious")
    os.execute(("ln -s %s %s"):format(q(victim), q(dir .. "/r.html.tmp")))
    local code, _, err = C.run("report", store, "-o", dir .. "/r.html")
    assert.equal(0, code, err)
    assert.equal("precious", slurp(victim))
    assert.matches("<html", slurp(dir .. "/r.html"))
  end)
end)

describe("errors name what the user called, at the user's line", function()
  after_each(helpers.cleanup)

  local function raised(f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    return tostring(err)
  end

  it("a table element that is not a number", function()
    local s <close> = assert(synaptic.open(helpers.tmpdir("el")))
    assert.matches("^spec/89[^:]*:%d+: bad argument #3 to 'put_weights' %(element 2 is a string, not a number%)$",
      raised(function() s:put_weights("e", 1, { 1, "x" }, {}) end))
  end)

  it("synaptic.node and synaptic.sync_engine given no store", function()
    assert.matches("^spec/89[^:]*:%d+: bad argument #1 to 'node' %(synaptic.store expected, got nil%)$",
      raised(function() synaptic.node(nil, { node_id = "n" }) end))
    assert.matches("^spec/89[^:]*:%d+: bad argument #1 to 'sync_engine' %(synaptic.store expected, got table%)$",
      raised(function() synaptic.sync_engine({}, {}) end))
    local s = assert(synaptic.open(helpers.tmpdir("closed")))
    s:close()
    assert.matches("^spec/89[^:]*:%d+: attempt to use a closed store$", raised(function() synaptic.node(s) end))
  end)

  it("runtime train with an oversized query, restore_state with an empty id", function()
    local rt <close> = assert(synaptic.runtime(helpers.tmpdir("rt")))
    assert.matches("^spec/89[^:]*:%d+: train: query longer than 65536 bytes$",
      raised(function() rt:train(("x"):rep(65537), "coding") end))
    assert.matches("^spec/89[^:]*:%d+: train: query must not be empty$", raised(function() rt:train("", "coding") end))
    assert.matches("^spec/89[^:]*:%d+: route: query must be a string$", raised(function() rt:route(1) end))
    assert.matches("^spec/89[^:]*:%d+: restore_state: expected a checkpoint id %(a non%-empty string%) or a step$",
      raised(function() rt:restore_state("") end))
  end)

  it("a runtime clock that closes the runtime", function()
    local t, rt = 0, nil
    rt = assert(synaptic.runtime(helpers.tmpdir("clock"), { auto_save_interval = 0, clock = function()
      t = t + 1
      if t > 2 then rt:close() end
      return t
    end }))
    assert.equal("attempt to use a closed runtime (its clock closed it)",
      raised(function() rt:process("hello there") end):gsub("^[^:]*:%d+: ", ""))
    assert.equal("synaptic.runtime (closed)", tostring(rt))
    assert.is_true(rt:close())
  end)
end)

describe("synaptic serve and SIGHUP", function()
  after_each(helpers.cleanup)

  it("ends on SIGHUP with its stats and exit code 0", function()
    local dir = helpers.tmpdir("serve-hup")
    local out, codef, pidf = dir .. "/out", dir .. "/code", dir .. "/pid"
    local cmd = C.ENV .. q(C.BIN) .. " serve " .. q(dir .. "/s") .. " --create --listen tcp://127.0.0.1:0 >" .. q(out)
                .. " 2>/dev/null & echo $! >" .. q(pidf) .. "; wait $!; echo $? >" .. q(codef)
    os.execute("sh -c " .. q(cmd) .. " >/dev/null 2>&1 &")
    local function lines_of(path)
      local t = {}
      for l in (slurp(path) or ""):gmatch("([^\n]*)\n") do t[#t + 1] = l end
      return t
    end
    local ok = false
    for _ = 1, 600 do
      if #lines_of(out) >= 1 and slurp(pidf) then ok = true; break end
      os.execute("sleep 0.05")
    end
    assert.is_true(ok, "serve did not start")
    os.execute("kill -HUP " .. slurp(pidf):match("%d+"))
    for _ = 1, 600 do
      if slurp(codef) then break end
      os.execute("sleep 0.05")
    end
    assert.equal("0", (slurp(codef) or ""):match("%d+"))
    local lines = lines_of(out)
    assert.equal("stopped by SIGHUP", lines[2])
    assert.matches("^weights_sent%s+0$", lines[3])
  end)
end)
