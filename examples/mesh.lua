-- A live mesh: three runtime processes on loopback, each learning a
-- different domain at the same time, that all end up knowing all three.
--
--   a (mathematics) ---- b (tool_use)
--          \              /
--           c (context) --         (ZeroMQ on 127.0.0.1, ephemeral ports)
--
-- Each process opens synaptic.runtime on its own new store with
-- sync_with_peers = true (a node; conflict_resolution "merge"), trains its
-- own query, and calls rt:poll between steps: its training spreads, the
-- peers' arrives and is used from its next step, without rt:reload(). Each
-- prints what its runtime routes as it happens. At the end this process
-- opens the three stores, checks their current weights are byte-equal, and
-- that a fresh runtime on each routes all three queries to their domains.
-- Bounded (a hard deadline of 40 s); temp dirs removed.
--
--   lua5.4 examples/mesh.lua            (LUA_PATH/LUA_CPATH as for make test)
local synaptic = require "synaptic"

local DEADLINE = 40
local STEPS = 60
local FAST = { heartbeat_interval_seconds = 0.2, sync_interval_seconds = 0.5, peer_timeout_seconds = 5 }
-- words no keyword cue knows: only training can route them
local ROLES = {
  a = { query = "zebra lantern quartz velvet", domain = "mathematics" },
  b = { query = "harbor cactus violin meadow", domain = "tool_use" },
  c = { query = "pepper glacier saddle orbit", domain = "context" },
}
local ORDER = { "a", "b", "c" }
local EXPERTS = { "reasoning", "coding", "language", "mathematics", "tool_use", "context", "router" }

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

-- The current weights of every layer (identity and bytes): what a runtime uses.
local function fingerprint(store)
  local parts = {}
  for _, x in ipairs(EXPERTS) do
    for _, l in ipairs(store:layers(x) or {}) do
      local w, b, info = store:get_weights(x, l)
      parts[#parts + 1] = ("%s/%d %d %s %s %s"):format(x, l, info.hlc, info.origin, w:tobytes(), b:tobytes())
    end
  end
  return table.concat(parts, "\n")
end

-- "mathematics 0.81 ok | tool_use 0.42 - | ..." and how many route right.
local function routes(rt)
  local parts, right = {}, 0
  for _, r in ipairs(ORDER) do
    local want = ROLES[r].domain
    local p, ranked = rt:route(ROLES[r].query)
    local top = rt.order[ranked[1]]
    if top == want then right = right + 1 end
    parts[#parts + 1] = ("%s %.2f %s"):format(want, p[ranked[1]], top == want and "ok" or "(" .. top .. ")")
  end
  return table.concat(parts, " | "), right
end

---------------------------------------------------------------------------
-- a runtime process
---------------------------------------------------------------------------

local function member(role, dir, stopfile, ...)
  local peers = { ... }
  local me = ROLES[role]
  local p2p = { node_id = role, listen = "tcp://127.0.0.1:0", peers = peers }
  for k, v in pairs(FAST) do p2p[k] = v end
  local rt = assert(synaptic.runtime(dir .. "/" .. role, { seed = 7, auto_save_interval = 3600,
                                                          sync_with_peers = true, p2p = p2p }))
  local node = rt:node()
  say("address %s", node:address())
  local t0 = synaptic.now()
  local function elapsed() return synaptic.now() - t0 end
  -- wait for both peers (heartbeats) and their first weights, so all three
  -- train on top of the same starting point
  while #node:peers() < 2 and elapsed() < DEADLINE / 2 do rt:poll(20) end
  for _ = 1, 25 do rt:poll(20) end
  say("%5.2fs connected to %d peers; learning '%s' -> %s", elapsed(), #node:peers(), me.query, me.domain)
  local known, last = {}, 0
  -- say when a query first routes to its domain here (when is what it
  -- says: during training, or after it, as the peers' last steps arrive)
  local function newly_known(when)
    for _, r in ipairs(ORDER) do
      local p, ranked = rt:route(ROLES[r].query)
      if not known[r] and rt.order[ranked[1]] == ROLES[r].domain then
        known[r] = true
        say("%5.2fs %s: now routes '%s' to %s (%.2f)%s", elapsed(), when, ROLES[r].query,
            ROLES[r].domain, p[ranked[1]], r == role and "" or "  <- learned from " .. r)
      end
    end
  end
  for step = 1, STEPS do
    rt:train(me.query, me.domain)
    rt:poll(5)
    newly_known(("step %2d"):format(step))
    if elapsed() - last >= 0.5 then
      last = elapsed()
      say("%5.2fs step %2d: %s", elapsed(), step, (routes(rt)))
    end
  end
  say("%5.2fs done training (%d layers taken up from peers)", elapsed(), rt.taken_up or 0)
  -- keep syncing until told to stop; say when the weights in use change
  local seen
  while not exists(stopfile) and elapsed() < DEADLINE do
    rt:poll(20)
    newly_known("after training")
    local f = fnv(fingerprint(rt.store))
    if f ~= seen then seen = f; say("state %s", f) end
  end
  local line, right = routes(rt)
  say("%5.2fs final: %s", elapsed(), line)
  say("knows all three: %s", right == #ORDER and "yes" or "NO")
  local st = node:stats()
  say("done: weights_sent %d weights_received %d conflicts merged %d", st.weights_sent,
      st.weights_received, st.conflicts)
  rt:close()
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

--- Children with their output in a log each under root: launch(role, ...)
-- -> child, pump() prints the new lines of every log prefixed by the role,
-- last(child, pattern) -> the capture of the last line matching, or nil.
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
          if not line:match("^state ") then say("[%s] %s", p.role, line) end
        end
      end
    end
  end
  local function last(p, pattern)
    for i = #p.lines, 1, -1 do
      local m = p.lines[i]:match(pattern)
      if m then return m end
    end
  end
  return launch, pump, last
end

local function wait_until(pump, cond, what)
  local t0 = synaptic.now()
  while synaptic.now() - t0 < DEADLINE do
    pump()
    local v = cond()
    if v then return v end
    sleep(0.05)
  end
  error("timed out waiting for " .. what)
end

local function run_mesh(root, stopfile)
  local launch, pump, last = children(root)
  local procs = {}
  procs.a = launch("a", stopfile)
  local a = wait_until(pump, function() return last(procs.a, "^address (%S+)") end, "a's address")
  procs.b = launch("b", stopfile, a)
  local b = wait_until(pump, function() return last(procs.b, "^address (%S+)") end, "b's address")
  procs.c = launch("c", stopfile, a, b)
  -- all trained, and the three use the same weights: then stop
  wait_until(pump, function()
    local s = {}
    for i, r in ipairs(ORDER) do
      if not last(procs[r], "^.*(done training)") then return nil end
      s[i] = last(procs[r], "^state (%x+)")
    end
    return s[1] and s[1] == s[2] and s[2] == s[3]
  end, "the three to agree")
  assert(io.open(stopfile, "w")):close()
  wait_until(pump, function()
    for _, r in ipairs(ORDER) do if not last(procs[r], "^(done):") then return nil end end
    return true
  end, "the three to finish")
  sleep(0.3)   -- they close their stores after saying done
  pump()
end

local function converged(root)
  local prints, all_route = {}, true
  say("")
  for _, role in ipairs(ORDER) do
    local store = assert(synaptic.open(root .. "/" .. role))
    prints[role] = fingerprint(store)
    store:close()
    local rt = assert(synaptic.runtime(root .. "/" .. role, { seed = 7 }))
    local line, right = routes(rt)
    rt:close()
    all_route = all_route and right == #ORDER
    say("%s: weights %s  %s", role, fnv(prints[role]), line)
  end
  local same = prints.b == prints.a and prints.c == prints.a
  say("byte-equal weights on all three stores: %s", same and "yes" or "NO")
  say("every runtime routes all three domains: %s", all_route and "yes" or "NO")
  say(same and all_route and "converged: yes" or "converged: NO")
  return same and all_route
end

local function main()
  local root = os.tmpname()
  os.remove(root)
  assert(os.execute("mkdir -p " .. q(root)))
  local stopfile = root .. "/stop"
  local ok, err = pcall(run_mesh, root, stopfile)
  if not ok then
    say("mesh: %s", tostring(err))
    assert(io.open(stopfile, "w")):close()
    sleep(1)
    os.execute("rm -rf " .. q(root))
    return 1
  end
  local good = converged(root)
  os.execute("rm -rf " .. q(root))
  return good and 0 or 1
end

local role = arg and arg[1]
if ROLES[role] then
  member(role, arg[2], arg[3], table.unpack(arg, 4))
else
  os.exit(main(), true)
end
