-- What the CLI specs share: running bin/synaptic in a subprocess, the
-- failure shape every command keeps, and a store with known contents.
local synaptic = require "synaptic"
local helpers = require "helpers"
local assert = require "luassert"

local M = {}
local q = helpers.shq

function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end


local ROOT = helpers.ROOT
local BIN = ROOT .. "/bin/synaptic"

local ENV = helpers.child_env()
M.ROOT, M.BIN, M.ENV = ROOT, BIN, ENV

local errfile = os.tmpname()
M.errfile = errfile

-- Runs `synaptic ARGS...`; returns exit code, stdout, stderr.
function M.run(...)
  local words = {}
  for i, a in ipairs { ... } do words[i] = q(a) end
  local p = io.popen(ENV .. q(BIN) .. " " .. table.concat(words, " ") .. " 2>" .. q(errfile))
  local out = p:read("a")
  local _, how, code = p:close()
  assert.equal("exit", how, "killed by a signal")
  return code, out, M.slurp(errfile) or ""
end

-- Starts `synaptic ARGS...` in the background (stderr to errpath): a
-- handle on its stdout, whose first line is the process id, and the pid.
function M.spawn(errpath, ...)
  local words = {}
  for i, a in ipairs { ... } do words[i] = q(a) end
  local cmd = "echo $$; " .. ENV .. "exec " .. q(BIN) .. " " .. table.concat(words, " ") .. " 2>" .. q(errpath)
  local p = io.popen("sh -c " .. q(cmd))
  return p, p:read("l")
end

-- Polls cond every 50 ms until it holds; fails naming what after 30 s (a
-- bound for a hung peer, not a wait: a passing run ends at the first
-- poll that sees it).
function M.wait_until(cond, what)
  for _ = 1, 600 do
    if cond() then return end
    os.execute("sleep 0.05")
  end
  error("timed out waiting until " .. what)
end

function M.lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- A failure: exit code, nothing on stdout, exactly one "synaptic: " line.
function M.assert_fails(code_wanted, pattern, code, out, err)
  assert.equal(code_wanted, code, err)
  assert.equal("", out)
  local l = M.lines(err)
  assert.equal(1, #l, err)
  assert.matches("^synaptic: ", l[1])
  if pattern then assert.matches(pattern, l[1]) end
end

-- path_or_store: a path (opened read-only for this call) or an open store.
function M.store_bytes(path_or_store, expert, layer, version)
  local s <close> = type(path_or_store) == "string" and assert(synaptic.open(path_or_store, { read_only = true }))
  local w, b, info = (s or path_or_store):get_weights(expert, layer, version)
  if not w then return nil end
  return w:tobytes(), b:tobytes(), info
end

-- Everything about a store's weights, for "unchanged" comparisons.
function M.snapshot(path)
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

M.ARCH = { 12, 8, 6, 4 }
local ARCH = M.ARCH

-- A store with: "coding" (3 layers {out, in}, layer 1 at versions 1..3,
-- a config), "raw" (layer 0, no shape, no biases, no config), two
-- checkpoints.
function M.make_store(path)
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

return M
