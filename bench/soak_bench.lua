-- Soak (make bench): three runtimes on real loopback nodes train and poll
-- for SOAK_STEPS rounds (default 2,000; a round is a training step on each
-- and a poll of each), with a growth-table row every 200 rounds: disk
-- bytes of the three stores, versions the router layer keeps, the median
-- round and the worst poll of those 200 rounds. Then how long until the
-- three agree byte for byte, and a fourth runtime joining with default
-- p2p settings until it holds what they hold. A mesh left running should
-- show flat rows. Printed, never asserted.
local synaptic = require "synaptic"

local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local now = U.now

local STEPS = tonumber(os.getenv("SOAK_STEPS") or "") or (os.getenv("BENCH_QUICK") == "1" and 400 or 2000)
local EVERY = 200
local FAST = { heartbeat_interval_seconds = 0.2, sync_interval_seconds = 0.5, peer_timeout_seconds = 5 }
local ROLES = {
  { id = "a", query = "zebra lantern quartz velvet", domain = "mathematics" },
  { id = "b", query = "harbor cactus violin meadow", domain = "tool_use" },
  { id = "c", query = "pepper glacier saddle orbit", domain = "context" },
}
local EXPERTS = { "reasoning", "coding", "language", "mathematics", "tool_use", "context", "router" }

print(("\n11. soak — three runtimes training and polling for %d rounds"):format(STEPS))
print(("="):rep(60))

-- The current weights of every layer (identity and bytes).
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

local function router_versions(store)
  local most = 0
  for _, l in ipairs(store:layers("router") or {}) do
    most = math.max(most, #store:weight_versions("router", l))
  end
  return most
end

local dir = U.tmpdir()
assert(synaptic.runtime(dir .. "/a", { seed = 7 })):close()
for _, r in ipairs { "b", "c" } do os.execute(("cp -r '%s/a' '%s/%s'"):format(dir, dir, r)) end
local rts, addrs = {}, {}
for i, role in ipairs(ROLES) do
  local p2p = { node_id = role.id, listen = "tcp://127.0.0.1:0", peers = {} }
  for k, v in pairs(FAST) do p2p[k] = v end
  for j = 1, i - 1 do p2p.peers[j] = addrs[j] end
  rts[i] = assert(synaptic.runtime(dir .. "/" .. role.id, { seed = 7, auto_save_interval = 3600,
                                                            sync_with_peers = true, p2p = p2p }))
  addrs[i] = rts[i]:node():address()
end
for _ = 1, 50 do for _, rt in ipairs(rts) do rt:poll(5) end end

local function disk()
  local total = 0
  for _, role in ipairs(ROLES) do total = total + (U.disk_bytes(dir .. "/" .. role.id) or 0) end
  return total
end

-- Where one store's bytes are: blob files (payloads), table files, WALs,
-- the rest (MANIFEST, info logs, OPTIONS).
local function kinds(p)
  local f = assert(io.popen("find '" .. p .. "' -type f -printf '%s %f\\n'"))
  local t = { blob = 0, sst = 0, log = 0, other = 0 }
  for line in f:lines() do
    local size, name = line:match("^(%d+) (.*)$")
    local ext = name and name:match("%.(%a+)$")
    local k = (ext == "blob" or ext == "sst" or ext == "log") and ext or "other"
    t[k] = t[k] + tonumber(size)
  end
  f:close()
  return t
end

print(("  %8s %10s %10s %12s %14s   %s"):format("rounds", "disk MiB", "router v", "round ms", "worst poll ms",
      "store a: blob / sst / wal / other MiB"))
local rounds, worst, first_round = {}, 0, nil
local t_all = now()
for step = 1, STEPS do
  local t0 = now()
  for i, rt in ipairs(rts) do rt:train(ROLES[i].query, ROLES[i].domain) end
  for _, rt in ipairs(rts) do
    local t = now()
    rt:poll(0)
    worst = math.max(worst, (now() - t) * 1e3)
  end
  rounds[#rounds + 1] = (now() - t0) * 1e3
  if step % EVERY == 0 then
    local med = U.median(rounds)
    first_round = first_round or med
    local v = 0
    for _, rt in ipairs(rts) do v = math.max(v, router_versions(rt.store)) end
    local k = kinds(dir .. "/a")
    print(("  %8d %10.1f %10d %12.2f %14.1f   %.1f / %.1f / %.1f / %.1f   (round %.2fx the first rows')"):format(
          step, disk() / U.MiB, v, med, worst, k.blob / U.MiB, k.sst / U.MiB, k.log / U.MiB, k.other / U.MiB,
          med / first_round))
    io.stdout:flush()
    rounds, worst = {}, 0
  end
end
local soak = now() - t_all

-- the three agree byte for byte
local t0 = now()
local agreed = false
while not agreed and now() - t0 < 120 do
  for _, rt in ipairs(rts) do rt:poll(2) end
  local f = fingerprint(rts[1].store)
  agreed = f == fingerprint(rts[2].store) and f == fingerprint(rts[3].store)
end
print(("  %d rounds in %.1f s; the three agree byte for byte %s after %.2f s"):format(STEPS, soak,
      agreed and "" or "(NOT)", now() - t0))
local right = 0
for _, rt in ipairs(rts) do
  for _, role in ipairs(ROLES) do
    local _, ranked = rt:route(role.query)
    if rt.order[ranked[1]] == role.domain then right = right + 1 end
  end
end
print(("  trained queries routed right: %d of %d"):format(right, #rts * #ROLES))

-- a late joiner with default p2p settings
assert(synaptic.runtime(dir .. "/d", { seed = 7 })):close()
t0 = now()
local d = assert(synaptic.runtime(dir .. "/d", { seed = 7, auto_save_interval = 3600, sync_with_peers = true,
                                                  p2p = { node_id = "d", listen = "tcp://127.0.0.1:0", peers = addrs } }))
local joined = false
while not joined and now() - t0 < 120 do
  d:poll(2)
  for _, rt in ipairs(rts) do rt:poll(0) end
  joined = fingerprint(d.store) == fingerprint(rts[1].store)
end
print(("  a fourth runtime joining with default p2p settings holds the same weights after %.2f s%s"):format(
      now() - t0, joined and "" or " (NOT)"))
print("  targets (issue 17): late round <= 2x an early one, worst poll <= 250 ms (goal 50), router <= 100 versions,")
print("  disk flat, byte-identical; joiner <= 5 s")
d:close()
for _, rt in ipairs(rts) do rt:close() end
U.cleanup()
