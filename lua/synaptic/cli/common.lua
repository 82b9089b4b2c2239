--- What the commands share: the failure a user sees, files and directories,
-- and opening a store.
local synaptic = require "synaptic"

local common = {}

common.EXIT_FAILURE, common.EXIT_USAGE = 1, 2

---------------------------------------------------------------------------
-- Failures
---------------------------------------------------------------------------

-- A failure the user should see as "synaptic: <msg>". Raised as a table so
-- that run() tells it apart from a bug (any other error).
local Failure = {}

function common.is_failure(e)
  return getmetatable(e) == Failure
end

function common.fail(fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error(setmetatable({ msg = msg, code = common.EXIT_FAILURE }, Failure), 0)
end

-- For the API's `nil, message` results: the values, or a failure.
function common.check(v, err, ...)
  if v == nil and err ~= nil then common.fail("%s", err) end
  return v, err, ...
end

---------------------------------------------------------------------------
-- Files and directories
---------------------------------------------------------------------------

function common.shell_quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

function common.exists(path)
  -- os.rename(p, p) succeeds for any existing file or directory.
  return os.rename(path, path) ~= nil
end

function common.is_file(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local _, _, code = f:read(0)
  f:close()
  return code ~= 21   -- EISDIR: io.open succeeds on a directory, reading fails
end

-- Bytes under path (du), or 0 when du cannot tell: only ever a bar's total.
function common.dir_bytes(path)
  local p = io.popen("du -sb -- " .. common.shell_quote(path) .. " 2>/dev/null")
  local n = p:read("n")
  p:close()
  return n or 0
end

function common.dir_is_empty(path)
  local p = io.popen("ls -A -- " .. common.shell_quote(path) .. " 2>/dev/null")
  local first = p:read("l")
  p:close()
  return first == nil
end

---------------------------------------------------------------------------
-- Stores
---------------------------------------------------------------------------

-- Checked before opening so that a mistyped path is reported, never
-- created as a new empty store.
function common.check_store_path(path)
  if not common.exists(path) then
    common.fail("no store at '%s' (no such file or directory)", path)
  end
  if not common.is_file(path .. "/CURRENT") then
    common.fail("'%s' is not a synaptic store (no RocksDB CURRENT file)", path)
  end
end

-- opts.create: open (and so create) the store without checking it exists.
function common.open_store(path, opts)
  opts = opts or {}
  if not opts.create then common.check_store_path(path) end
  local store, err = synaptic.open(path, opts.read_only and { read_only = true } or nil)
  if not store then common.fail("%s", err) end
  return store
end

-- An expert's layers with their versions.
function common.expert_layers(store, id)
  local found = {}
  for _, layer in ipairs(common.check(store:layers(id))) do
    found[#found + 1] = { layer = layer, versions = common.check(store:weight_versions(id, layer)) }
  end
  return found
end

-- Every metric name with its number of points in [from, to] (nil: open),
-- sorted by name: a list of { name, points }.
function common.metric_summary(store, from, to)
  local list = {}
  for _, name in ipairs(common.check(store:metric_names())) do
    list[#list + 1] = { name = name, points = common.check(store:metric_count(name, from, to)) }
  end
  return list
end

function common.get_weights(store, id, layer, version)
  local w, b, info = store:get_weights(id, layer, version)
  if w == nil and b ~= nil then common.fail("%s", b) end
  return w, b, info
end

return common
