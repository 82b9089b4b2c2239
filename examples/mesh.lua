-- Three synaptic nodes in three processes on loopback, syncing a training
-- runtime, printed step by step:
--
--   trainer  --  relay  --  watcher      (TCP on 127.0.0.1, ephemeral ports)
--
-- The trainer runs synaptic.runtime with rt:enable_p2p_sync, trains in
-- rounds and saves a checkpoint; the relay and the watcher are plain stores
-- with a node each and print every weight version and checkpoint as it
-- arrives (the watcher gets everything through the relay). At the end this
-- process opens all three stores and checks they hold the same weights,
-- configs and checkpoints byte for byte, and that a runtime on each answers
-- a query identically. Bounded (a hard deadline of 25 s); temp dirs removed.
--
--   lua5.4 examples/mesh.lua            (LUA_PATH/LUA_CPATH as for make test)
local synaptic = require "synaptic"

local DEADLINE = 25
local FAST = { heartbeat_interval_seconds = 0.2, sync_interval_seconds = 1, peer_timeout_seconds = 5 }

local function conf(t)
  for k, v in pairs(FAST) do t[k] = v end
  return t
end

local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local function sleep(s) os.execute(("sleep %.3f"):format(s)) end

-- FNV-1a of a string, for short printable fingerprints.
local function fnv(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return ("%08x"):format(h)
end

-- expert -> {layer -> version} of what a store holds now.
local function versions(store)
  local out = {}
  for _, x in ipairs(store:list_experts() or {}) do
    out[x] = {}
    for _, l in ipairs(store:layers(x) or {}) do
      local _, _, info = store:get_weights(x, l)
      if info then out[x][l] = info.version end
    end
  end
  return out
end

-- Everything replicated, as one string (current weights, configs, checkpoints).
local function fingerprint(store)
  local parts = {}
  local experts = store:list_experts() or {}
  table.sort(experts)
  for _, x in ipairs(experts) do
    for _, l in ipairs(store:layers(x) or {}) do
      local w, b, info = store:get_weights(x, l)
      parts[#parts + 1] = ("%s/%d v%d %s %s"):format(x, l, info.version, w:tobytes(), b:tobytes())
    end
    local c = store:get_config(x)
    if c then parts[#parts + 1] = ("%s %s %s"):format(x, c.domain, c.updated_at or "") end
  end
  for _, id in ipairs(store:list_checkpoints()) do
    local cp = store:get_checkpoint(id)
    parts[#parts + 1] = id .. " " .. tostring(cp.system_version)
  end
  return table.concat(parts, "\n")
end

---------------------------------------------------------------------------
-- roles (run in child processes)
---------------------------------------------------------------------------

local TRAINING = {
  { "Implement a function to parse this file", "coding" },
  { "What is 12 * 7 + 3 = ?", "mathematics" },
  { "Why does the sky look blue? Explain the reason.", "reasoning" },
  { "Use the tool to run and execute the script", "tool_use" },
}

local function trainer(dir, stopfile)
  local rt = assert(synaptic.runtime(dir .. "/trainer", { seed = 7, auto_save_interval = 3600 }))
  local node = rt:enable_p2p_sync(conf { node_id = "trainer", listen = "tcp://127.0.0.1:0" })
  say("address %s", node:address())
  local t0 = synaptic.now()
  -- wait for the relay to connect (its heartbeats reach us)
  while #node:peers() == 0 and synaptic.now() - t0 < 10 do node:poll(50) end
  say("relay connected; training")
  for round = 1, 3 do
    local loss = 0
    for _ = 1, 5 do
      for _, q in ipairs(TRAINING) do loss = loss + rt:train(q[1], q[2]) end
    end
    assert(rt:flush())
    local v = versions(rt.store)
    local function first(x)
      local l = math.huge
      for k in pairs(v[x] or {}) do l = math.min(l, k) end
      return l < math.huge and ("%s/%d v%d"):format(x, l, v[x][l]) or x .. " -"
    end
    say("round %d: mean loss %.4f; wrote %s, %s, ...", round, loss / (5 * #TRAINING), first("coding"),
        first("router"))
    node:run(0.5)
  end
  local id = assert(rt:save_state("mesh-final"))
  say("checkpoint %s saved (mesh-final)", id)
  while not exists(stopfile) and synaptic.now() - t0 < DEADLINE do node:poll(50) end
  local st = node:stats()
  say("done: weights_sent %d checkpoints_sent %d bytes_sent %d", st.weights_sent, st.checkpoints_sent, st.bytes_sent)
  node:close()
  rt:close()
end

-- A plain store and a node: prints every change as it lands. The relay
-- listens (the watcher connects to it) and stays until told to stop; the
-- watcher stops once the final checkpoint has arrived.
local function observer(role, dir, upstream, stopfile)
  local store = assert(synaptic.open(dir .. "/" .. role))
  local node = assert(synaptic.node(store, conf {
    node_id = role, peers = { upstream },
    listen = role == "relay" and "tcp://127.0.0.1:0" or nil,
  }))
  say("address %s", node:address() or "-")
  local t0 = synaptic.now()
  local seen, have_cp = {}, false
  while synaptic.now() - t0 < DEADLINE do
    node:poll(20)
    for x, layers in pairs(versions(store)) do
      for l, v in pairs(layers) do
        local key = x .. "/" .. l
        if seen[key] ~= v then
          seen[key] = v
          local w = store:get_weights(x, l)
          say("%6.2fs  %-18s v%-3d %7d floats  fnv %s", synaptic.now() - t0, key, v, #w, fnv(w:tobytes()))
        end
      end
    end
    for _, id in ipairs(store:list_checkpoints()) do
      local cp = store:get_checkpoint(id)
      if not have_cp and cp.system_version == "mesh-final" then
        have_cp = true
        say("%6.2fs  checkpoint %s (mesh-final) arrived, pinning %d layers", synaptic.now() - t0, id, #(cp.pins or {}))
      end
    end
    if role == "watcher" and have_cp then break end
    if role == "relay" and exists(stopfile) then break end
  end
  local st = node:stats()
  say("done: weights_received %d checkpoints_received %d rejected %d", st.weights_received,
      st.checkpoints_received, st.rejected)
  node:close()
  store:close()
end

---------------------------------------------------------------------------
-- the driver
---------------------------------------------------------------------------

local function interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return arg[i] or "lua5.4"
end

local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end

--- Starts children with their output in a log each under root. Returns
-- launch(role, ...) -> child, pump() which prints the new lines of every
-- child's log prefixed by its role, and wait_for(child, pattern) -> capture.
local function children(root)
  local procs = {}
  local function launch(role, ...)
    local log = root .. "/" .. role .. ".log"
    local words = { q(interpreter()), q(arg[0]), role, q(root) }
    for _, a in ipairs { ... } do words[#words + 1] = q(a) end
    os.execute(table.concat(words, " ") .. " > " .. q(log) .. " 2>&1 &")
    local p = { role = role, log = log, pos = 0, lines = {} }
    procs[#procs + 1] = p
    return p
  end
  -- print new lines of every child's log, prefixed by its role
  local function pump()
    for _, p in ipairs(procs) do
      local f = io.open(p.log, "rb")
      if f then
        f:seek("set", p.pos)
        local data = f:read("a") or ""
        f:close()
        local upto = data:match("^.*\n") or ""
        p.pos = p.pos + #upto
        for line in upto:gmatch("([^\n]*)\n") do
          p.lines[#p.lines + 1] = line
          say("[%-7s] %s", p.role, line)
        end
      end
    end
  end
  local function wait_for(p, pattern)
    local t0 = synaptic.now()
    while synaptic.now() - t0 < DEADLINE do
      pump()
      for _, l in ipairs(p.lines) do
        local m = l:match(pattern)
        if m then return m end
      end
      sleep(0.05)
    end
    error(p.role .. " did not print " .. pattern)
  end
  return launch, pump, wait_for
end

--- Trainer, then relay, then watcher, each started once the one it connects
-- to has printed its address; returns when all three have said done.
local function run_mesh(launch, wait_for, stopfile)
  local tr = launch("trainer", stopfile)
  local trainer_addr = wait_for(tr, "^address (%S+)")
  local relay = launch("relay", trainer_addr, stopfile)
  local relay_addr = wait_for(relay, "^address (%S+)")
  local watcher = launch("watcher", relay_addr, stopfile)
  wait_for(watcher, "^(done)")
  assert(io.open(stopfile, "w")):close()
  wait_for(relay, "^(done)")
  wait_for(tr, "^(done)")
  sleep(0.2)   -- the processes close their stores after saying done
end

-- every store holds the same bytes, and answers the same
local function converged(root)
  local prints, answers = {}, {}
  for _, role in ipairs { "trainer", "relay", "watcher" } do
    local store = assert(synaptic.open(root .. "/" .. role))
    prints[role] = fingerprint(store)
    store:close()
    local rt = assert(synaptic.runtime(root .. "/" .. role, { seed = 7 }))
    answers[role] = rt:process("Implement a function to sort numbers")
    rt:close()
  end
  local same = prints.relay == prints.trainer and prints.watcher == prints.trainer
  local same_answer = answers.relay == answers.trainer and answers.watcher == answers.trainer
  say("")
  say("trainer fingerprint %s (%d bytes of state compared)", fnv(prints.trainer), #prints.trainer)
  say("relay   fingerprint %s  byte-equal: %s", fnv(prints.relay), prints.relay == prints.trainer and "yes" or "NO")
  say("watcher fingerprint %s  byte-equal: %s", fnv(prints.watcher), prints.watcher == prints.trainer and "yes" or "NO")
  say("same answer from a runtime on each store: %s", same_answer and "yes" or "NO")
  say(same and same_answer and "converged: yes" or "converged: NO")
  return same and same_answer
end

local function main()
  local root = os.tmpname()
  os.remove(root)
  assert(os.execute("mkdir -p " .. q(root)))
  local stopfile = root .. "/stop"
  local launch, pump, wait_for = children(root)
  local ok, err = pcall(run_mesh, launch, wait_for, stopfile)
  pump()
  if not ok then
    say("mesh: %s", tostring(err))
    assert(io.open(stopfile, "w")):close()
    sleep(1)
    os.execute("rm -rf " .. q(root))
    return 1
  end
  local all_same = converged(root)
  os.execute("rm -rf " .. q(root))
  return all_same and 0 or 1
end

local role = arg and arg[1]
if role == "trainer" then
  trainer(arg[2], arg[3])
elseif role == "relay" or role == "watcher" then
  observer(role, arg[2], arg[3], arg[4])
else
  os.exit(main(), true)
end
