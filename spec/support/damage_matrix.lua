-- The salvage/verify damage matrix (issue 19, "Done when"): one store per
-- variant, damaged one way, then (a) a read-write open, (b) verify of a
-- read-only open, (c) salvage into a fresh directory. Prints, per variant,
-- the records present before, what the read-write open did, what salvage
-- recovered and reported lost, and what was actually lost.
--
--   lua5.4 spec/support/damage_matrix.lua        (from the repository root,
--                                                 LUA_PATH/LUA_CPATH as for specs)
-- Also used by spec 24, which asserts that no variant opens read-write and
-- then lacks records in silence. Returns the module when required.
local synaptic = require "synaptic"
local helpers = require "helpers"
local damage = require "damage"

local M = {}
local shq = helpers.shq

-- Every record the base store holds, as a set of names.
local function records(s)
  local out = {}
  for i = 1, damage.STATES do
    if s:get_state("key" .. i) == damage.state(i) then out["state " .. i] = true end
  end
  for e = 1, damage.EXPERTS do
    if s:get_config("exp" .. e) then out["config " .. e] = true end
    for l = 0, damage.LAYERS - 1 do
      local vs = s:weight_versions("exp" .. e, l) or {}
      for _, v in ipairs(vs) do
        if s:get_weights("exp" .. e, l, v) then out[("weights %d/%d/%d"):format(e, l, v)] = true end
      end
    end
  end
  for _, p in ipairs(s:metrics("loss") or {}) do out["metric " .. p.timestamp] = true end
  for _, id in ipairs(s:list_checkpoints() or {}) do out["checkpoint " .. id] = true end
  -- the WAL-only writes of the crashed bases
  for i = 1, 100 do
    if s:get_state("wal" .. i) then out["wal state " .. i] = true end
  end
  return out
end

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- Records of the store at path, read-only (pcall'd: reads may raise on
-- damage), or nil, message.
local function read(path)
  local s, msg = synaptic.open(path, { read_only = true })
  if not s then return nil, msg end
  local ok, got = pcall(records, s)
  s:close()
  if not ok then return nil, tostring(got) end
  return got
end

local CHILD = [[
local synaptic = require "synaptic"
local s = assert(synaptic.open(arg[1], { write_buffer_mb = 1 }))
for i = 1, 100 do assert(s:put_state("wal" .. i, ("wal value %d "):format(i) .. ("x"):rep(120))) end
os.exit(0, false)
]]

-- The bases: "closed" (damage.build, compacted, closed cleanly), "crashed"
-- (then 100 states written and the process gone without a close: they
-- are in the WAL only), "old-closed" (crashed without its SYNAPTIC-OPEN
-- marker: a store the last release closed, whose close did not flush).
local made = {}

local function base(root, kind)
  local dir = root .. "/base-" .. kind
  if made[dir] then return dir end
  made[dir] = true
  damage.build(dir)
  if kind ~= "closed" then
    local script = root .. "/child.lua"
    helpers.write_file(script, CHILD)
    local ok, _, out = helpers.run(("%s lua5.4 %s %s"):format(helpers.child_env(), shq(script), shq(dir)))
    assert(ok, out)
    if kind == "old-closed" then assert(os.remove(dir .. "/SYNAPTIC-OPEN")) end
  end
  return dir
end

local function first(dir, pattern)
  return damage.files(dir, pattern)[1]
end

local function cut(file, frac)
  local d = helpers.read_file(file)
  helpers.write_file(file, d:sub(1, math.floor(#d * frac)))
end

local function wal(dir)
  local t = damage.files(dir, "%.log$")
  table.sort(t)
  return t[#t]
end

local function flip_tail(file)
  local d = helpers.read_file(file)
  helpers.write_file(file, d:sub(1, #d - 20) .. ("\255"):rep(20))
end

-- The limits, measured and documented (README): a crash's torn tail loses
-- the writes it tore, as RocksDB's tolerated-tail recovery has it; a store
-- the last release closed kept writes in its WAL, and a cut or deleted WAL
-- there is not told (no marker, no preallocated space left to miss).
M.LIMITS = {
  ["WAL after a crash: torn tail (space kept)"] = true,
  ["WAL of a store the last release closed: cut in half"] = true,
  ["WAL of a store the last release closed: deleted"] = true,
}

-- name, base kind, damage(dir)
M.VARIANTS = {
  { "states SST: data block flipped (10%)", "closed", function(d) damage.flip_at(damage.sst_of(d, "system_state"), 0.1) end },
  { "states SST: data block flipped (50%)", "closed", function(d) damage.flip_at(damage.sst_of(d, "system_state"), 0.5) end },
  { "states SST: index flipped (97%)", "closed", function(d) damage.flip_at(damage.sst_of(d, "system_state"), 0.97) end },
  { "states SST: footer overwritten", "closed", function(d) flip_tail(damage.sst_of(d, "system_state")) end },
  { "states SST: cut in half", "closed", function(d) cut(damage.sst_of(d, "system_state"), 0.5) end },
  { "states SST: deleted", "closed", function(d) assert(os.remove(damage.sst_of(d, "system_state"))) end },
  { "weights SST: data flipped (50%)", "closed", function(d) damage.flip_at(damage.sst_of(d, "neural_weights"), 0.5) end },
  { "weights SST: footer overwritten", "closed", function(d) flip_tail(damage.sst_of(d, "neural_weights")) end },
  { "weights SST: deleted", "closed", function(d) assert(os.remove(damage.sst_of(d, "neural_weights"))) end },
  { "metrics SST: data flipped (50%)", "closed", function(d) damage.flip_at(damage.sst_of(d, "metrics"), 0.5) end },
  { "blob: flipped (10%)", "closed", function(d) damage.flip_at(first(d, "%.blob$"), 0.1) end },
  { "blob: flipped (50%)", "closed", function(d) damage.flip_at(first(d, "%.blob$"), 0.5) end },
  { "blob: flipped (90%)", "closed", function(d) damage.flip_at(first(d, "%.blob$"), 0.9) end },
  { "blob: cut in half", "closed", function(d) cut(first(d, "%.blob$"), 0.5) end },
  { "blob: deleted", "closed", function(d) assert(os.remove(first(d, "%.blob$"))) end },
  { "MANIFEST: flipped (50%)", "closed", function(d) damage.flip_at(first(d, "^MANIFEST"), 0.5) end },
  { "MANIFEST: cut in half", "closed", function(d) cut(first(d, "^MANIFEST"), 0.5) end },
  { "MANIFEST: emptied", "closed", function(d) cut(first(d, "^MANIFEST"), 0) end },
  { "MANIFEST: deleted", "closed", function(d) assert(os.remove(first(d, "^MANIFEST"))) end },
  { "CURRENT: deleted", "closed", function(d) assert(os.remove(d .. "/CURRENT")) end },
  { "CURRENT: garbage", "closed", function(d) helpers.write_file(d .. "/CURRENT", "garbage") end },
  { "CURRENT: names a missing MANIFEST", "closed", function(d) helpers.write_file(d .. "/CURRENT", "MANIFEST-999999\n") end },
  { "OPTIONS: flipped (50%)", "closed", function(d) damage.flip_at(first(d, "^OPTIONS"), 0.5) end },
  { "OPTIONS: deleted", "closed", function(d) for _, f in ipairs(damage.files(d, "^OPTIONS")) do os.remove(f) end end },
  { "IDENTITY: deleted", "closed", function(d) assert(os.remove(d .. "/IDENTITY")) end },
  { "IDENTITY: garbage", "closed", function(d) helpers.write_file(d .. "/IDENTITY", "not an id") end },
  { "WAL after a clean close: deleted", "closed", function(d) for _, f in ipairs(damage.files(d, "%.log$")) do os.remove(f) end end },
  { "WAL after a crash: flipped (50%)", "crashed", function(d) damage.flip_at(wal(d), 0.5) end },
  { "WAL after a crash: cut in half", "crashed", function(d) cut(wal(d), 0.5) end },
  { "WAL after a crash: deleted", "crashed", function(d) assert(os.remove(wal(d))) end },
  { "WAL after a crash: torn tail (space kept)", "crashed", function(d)
      local f = wal(d)
      cut(f, 0.98)
      os.execute(("fallocate -n -o %d -l 1048576 %s"):format(#helpers.read_file(f), shq(f)))
    end },
  { "WAL of a store the last release closed: flipped (50%)", "old-closed", function(d) damage.flip_at(wal(d), 0.5) end },
  { "WAL of a store the last release closed: cut in half", "old-closed", function(d) cut(wal(d), 0.5) end },
  { "WAL of a store the last release closed: deleted", "old-closed", function(d) assert(os.remove(wal(d))) end },
}

-- One variant: a row of what happened.
function M.run(root, i)
  local v = M.VARIANTS[i]
  local src = base(root, v[2])
  local before = assert(read(src))
  local function fresh(tag)
    local dir = ("%s/v%d-%s"):format(root, i, tag)
    os.execute(("rm -rf %s && cp -r %s %s"):format(shq(dir), shq(src), shq(dir)))
    v[3](dir)
    return dir
  end
  local row = { name = v[1], before = count(before) }
  -- (a) a read-write open
  local dir = fresh("open")
  local s, msg = synaptic.open(dir)
  if s then
    s:close()
    local got = read(dir) or {}
    row.open = "opened"
    row.open_missing = 0
    for k in pairs(before) do if not got[k] then row.open_missing = row.open_missing + 1 end end
  else
    row.open = "refused"
    row.open_msg = msg
  end
  -- (b) verify of a read-only open
  local r = synaptic.open(fresh("verify"), { read_only = true })
  if r then
    local called, ok, vr = pcall(r.verify, r)
    row.verify = not called and "raised" or ok and "ok" or ("%d problems"):format(#vr.problems)
    r:close()
  else
    row.verify = "no open"
  end
  -- (c) salvage
  local sdir = fresh("salvage")
  local out = sdir .. "-out"
  local ok, report = synaptic.salvage(sdir, out)
  if ok == nil then
    row.salvage = "failed"
    row.salvage_msg = report
  else
    local got = read(out) or {}
    row.salvage = ok and "clean" or "damaged"
    row.recovered = count(got)
    row.lost = 0
    for k in pairs(before) do if not got[k] then row.lost = row.lost + 1 end end
    row.reported = #report.lost
    row.unreadable = #report.unreadable
  end
  return row
end

function M.print(rows)
  local fmt = "%-56s %6s  %-14s %-12s %-8s %9s %6s %8s %10s"
  print(fmt:format("variant", "before", "rw open", "verify", "salvage", "recovered", "lost",
    "reported", "unreadable"))
  for _, r in ipairs(rows) do
    local open = r.open == "opened" and ("opened -%d"):format(r.open_missing) or r.open
    print(fmt:format(r.name, r.before, open, r.verify, r.salvage, tostring(r.recovered or "-"),
      tostring(r.lost or "-"), tostring(r.reported or "-"), tostring(r.unreadable or "-")))
  end
end

if ... ~= "damage_matrix" then
  local root = helpers.tmpdir("matrix")
  local rows = {}
  for i = 1, #M.VARIANTS do rows[i] = M.run(root, i) end
  M.print(rows)
  helpers.cleanup()
end
return M
