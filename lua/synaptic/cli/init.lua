--- The `synaptic` command: `synaptic COMMAND STORE [ARGS]`.
-- `cli.run(argv)` parses the arguments with lua-argparse, runs one command
-- and returns the process exit code (0 ok, 1 failure, 2 usage error); it
-- never calls os.exit, so specs can drive it in-process. bin/synaptic is the
-- launcher. `cli.safetensors` is the pure-Lua safetensors reader/writer that
-- `export` and `import` use.
local argparse = require "argparse"
local cjson = require "cjson"
local synaptic = require "synaptic"

local cli = {}

-- Our own cjson instance, so settings never leak into a caller's cjson.
local json = cjson.new()

local EXIT_FAILURE, EXIT_USAGE = 1, 2

-- A failure the user should see as "synaptic: <msg>". Raised as a table so
-- it is told apart from a bug (any other error) in run().
local Failure = {}
local function fail(fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error(setmetatable({ msg = msg, code = EXIT_FAILURE }, Failure), 0)
end

local function one_line(s)
  return (tostring(s):gsub("%s*\n%s*", " "):gsub("%s+$", ""))
end

local function out(fmt, ...)
  io.stdout:write(select("#", ...) > 0 and fmt:format(...) or fmt, "\n")
end

---------------------------------------------------------------------------
-- JSON output
---------------------------------------------------------------------------

-- lua-cjson 2.1.0 encodes an empty table as {} and prints every number with
-- %.14g. So: lists go through array(), whose empty case becomes a marker
-- string replaced by [] after encoding; integers too large for 14 digits
-- (hybrid logical clocks) are emitted as strings rather than rounded.
local ARRAY = {}
local EMPTY_ARRAY = "\0synaptic-empty-array\0"
local EMPTY_ARRAY_PATTERN = json.encode(EMPTY_ARRAY):gsub("%p", "%%%0")

local function array(t)
  return setmetatable(t or {}, ARRAY)
end

local function jsonable(v)
  if v == json.null then
    return v
  elseif type(v) == "table" then
    if getmetatable(v) == ARRAY and #v == 0 then return EMPTY_ARRAY end
    local c = {}
    for k, x in pairs(v) do c[k] = jsonable(x) end
    return c
  elseif math.type(v) == "integer" and (v > 1e14 or v < -1e14) then
    return tostring(v)
  elseif type(v) == "userdata" or type(v) == "function" then
    return tostring(v)
  end
  return v
end

local function encode_json(v)
  local s = json.encode(jsonable(v))
  return (s:gsub(EMPTY_ARRAY_PATTERN, "[]"))
end

local function print_json(v)
  io.stdout:write(encode_json(v), "\n")
end

-- The same for a JSON object whose key order matters (a safetensors header):
-- keys and values are still encoded by cjson, only the order is ours.
local function ordered_object(entries)
  local parts = {}
  for i, e in ipairs(entries) do
    parts[i] = json.encode(e[1]) .. ":" .. (e.raw or json.encode(jsonable(e[2])))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local function shell_quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

local function exists(path)
  -- os.rename(p, p) succeeds for any existing file or directory.
  return os.rename(path, path) ~= nil
end

local function is_file(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local _, _, code = f:read(0)
  f:close()
  return code ~= 21   -- EISDIR: io.open succeeds on a directory, reading fails
end

local function dir_is_empty(path)
  local p = io.popen("ls -A -- " .. shell_quote(path) .. " 2>/dev/null")
  local first = p:read("l")
  p:close()
  return first == nil
end

local function stdout_is_tty()
  return os.execute("test -t 1") == true
end

-- A one-line status on a terminal, erased when the work is done. Only drawn
-- when stdout is a terminal and the output is not --json.
local function progress(args, text)
  if args.json or not stdout_is_tty() then return function() end end
  io.stdout:write(text, " ...")
  io.stdout:flush()
  return function() io.stdout:write("\r\27[K") io.stdout:flush() end
end

local function human(bytes)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local n, u = bytes, 1
  while n >= 1024 and u < #units do n, u = n / 1024, u + 1 end
  if u == 1 then return ("%d B"):format(bytes) end
  return ("%.2f %s"):format(n, units[u])
end

local function iso_time(t)
  if type(t) ~= "number" then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function shape_text(shape)
  if not shape then return "-" end
  return table.concat(shape, "x")
end

-- Checked before opening so that a mistyped path is reported, never
-- created as a new empty store.
local function check_store_path(path)
  if not exists(path) then fail("no store at '%s' (no such file or directory)", path) end
  if not is_file(path .. "/CURRENT") then
    fail("'%s' is not a synaptic store (no RocksDB CURRENT file)", path)
  end
end

local function open_store(path, opts)
  check_store_path(path)
  local store, err = synaptic.open(path, opts)
  if not store then fail("%s", err) end
  return store
end

local function check(v, err, ...)
  if v == nil and err ~= nil then fail("%s", err) end
  return v, err, ...
end

-- An expert's layers with their versions.
local function expert_layers(store, id)
  local found = {}
  for _, layer in ipairs(check(store:layers(id))) do
    found[#found + 1] = { layer = layer, versions = check(store:weight_versions(id, layer)) }
  end
  return found
end

local function get_weights(store, id, layer, version)
  local w, b, info = store:get_weights(id, layer, version)
  if w == nil and b ~= nil then fail("%s", b) end
  return w, b, info
end

---------------------------------------------------------------------------
-- safetensors
---------------------------------------------------------------------------
-- File layout: an 8-byte little-endian header length N, N bytes of JSON
-- ({name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}), then
-- the tensor bytes; offsets are relative to the end of the header. We write
-- F32 only, tensors back to back in the order given, and pad the header
-- with spaces so the data starts 8-byte aligned (as the reference does).

local safetensors = {}
cli.safetensors = safetensors

-- The reference implementation's bound on the header (100 MB).
safetensors.MAX_HEADER = 100 * 1000 * 1000

--- Encode tensors to a safetensors string.
-- tensors: list of {name=, shape={...}, data=<floats or little-endian bytes>}
-- metadata: optional table of string -> string.
function safetensors.encode(tensors, metadata)
  local entries, blobs, offset = {}, {}, 0
  if metadata and next(metadata) then
    local keys = {}
    for k in pairs(metadata) do keys[#keys + 1] = k end
    table.sort(keys)
    local meta = {}
    for i, k in ipairs(keys) do meta[i] = { k, tostring(metadata[k]) } end
    entries[1] = { "__metadata__", raw = ordered_object(meta) }
  end
  for i, t in ipairs(tensors) do
    local bytes = type(t.data) == "string" and t.data or t.data:tobytes()
    local n = 1
    for _, d in ipairs(t.shape) do n = n * d end
    assert(n * 4 == #bytes, "tensor " .. t.name .. ": shape does not match its data")
    blobs[i] = bytes
    entries[#entries + 1] = { t.name, raw = ordered_object {
      { "dtype", "F32" },
      { "shape", array { table.unpack(t.shape) } },
      { "data_offsets", array { offset, offset + #bytes } },
    } }
    offset = offset + #bytes
  end
  local header = ordered_object(entries)
  header = header .. (" "):rep((8 - #header % 8) % 8)
  return string.pack("<I8", #header) .. header .. table.concat(blobs)
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- A JSON number that is a non-negative integer, as a Lua integer.
local function count_of(v)
  if type(v) ~= "number" then return nil end
  local i = math.tointeger(v)
  if i and i >= 0 then return i end
  return nil
end

--- Decode and validate a safetensors string.
-- Returns {tensors = {name = {name, dtype, shape, data_offsets, bytes}},
-- order = {names by offset}, metadata = {...}}, or nil and a one-line reason.
function safetensors.decode(data)
  if #data < 8 then
    return nil, ("file too short for a safetensors header (%d bytes)"):format(#data)
  end
  local n = string.unpack("<i8", data)
  if n <= 0 or n > #data - 8 then
    return nil, ("header length %d does not fit a %d-byte file"):format(n, #data)
  end
  if n > safetensors.MAX_HEADER then
    return nil, ("header length %d is over the %d-byte limit"):format(n, safetensors.MAX_HEADER)
  end
  local header = data:sub(9, 8 + n)
  if header:sub(1, 1) ~= "{" then
    return nil, "header is not a JSON object"
  end
  local ok, h = pcall(json.decode, header)
  if not ok then return nil, "header is not valid JSON: " .. one_line(h) end
  if type(h) ~= "table" then return nil, "header is not a JSON object" end

  local body = #data - 8 - n
  local result = { tensors = {}, order = {}, metadata = {} }
  for name, t in pairs(h) do
    if type(name) ~= "string" then return nil, "header is not a JSON object" end
    if name == "__metadata__" then
      if type(t) ~= "table" then return nil, "__metadata__ is not an object" end
      for k, v in pairs(t) do
        if type(k) ~= "string" or type(v) ~= "string" then
          return nil, "__metadata__ must map strings to strings"
        end
        result.metadata[k] = v
      end
    else
      local what = ("tensor '%s'"):format(name)
      if type(t) ~= "table" then return nil, what .. " is not an object" end
      for k in pairs(t) do
        if k ~= "dtype" and k ~= "shape" and k ~= "data_offsets" then
          return nil, ("%s has an unknown field '%s'"):format(what, tostring(k))
        end
      end
      if type(t.dtype) ~= "string" then return nil, what .. " has no dtype" end
      if t.dtype ~= "F32" then
        return nil, ("%s has dtype %s; only F32 is supported"):format(what, t.dtype)
      end
      if not is_list(t.shape) then return nil, what .. " has no shape list" end
      local shape, count = {}, 1
      for i, d in ipairs(t.shape) do
        local di = count_of(d)
        if not di then return nil, ("%s: shape[%d] is not a non-negative integer"):format(what, i) end
        -- bound the product by the data size as we go, so it cannot overflow
        if di > 0 and count > body // 4 // di then
          return nil, ("%s: shape %s is larger than the file"):format(what, json.encode(t.shape))
        end
        shape[i], count = di, count * di
      end
      local off = t.data_offsets
      if not is_list(off) or #off ~= 2 then
        return nil, what .. " has no data_offsets pair"
      end
      local b, e = count_of(off[1]), count_of(off[2])
      if not b or not e or b > e then
        return nil, what .. ": data_offsets are not an increasing pair of non-negative integers"
      end
      if e > body then
        return nil, ("%s: data_offsets [%d, %d] are out of range (data is %d bytes)"):format(what, b, e, body)
      end
      if e - b ~= count * 4 then
        return nil, ("%s: %d data bytes do not match shape %s (%d bytes of F32)")
          :format(what, e - b, shape_text(shape), count * 4)
      end
      result.tensors[name] = { name = name, dtype = "F32", shape = shape,
                               data_offsets = { b, e },
                               bytes = data:sub(8 + n + b + 1, 8 + n + e) }
      result.order[#result.order + 1] = name
    end
  end
  -- Like the reference: tensors tile the data exactly, no overlap, no gap.
  table.sort(result.order, function(a, b)
    local x, y = result.tensors[a].data_offsets, result.tensors[b].data_offsets
    if x[1] ~= y[1] then return x[1] < y[1] end
    if x[2] ~= y[2] then return x[2] < y[2] end
    return a < b
  end)
  local pos, prev = 0, nil
  for _, name in ipairs(result.order) do
    local o = result.tensors[name].data_offsets
    if o[1] < pos then
      return nil, ("tensors '%s' and '%s' overlap"):format(prev, name)
    elseif o[1] > pos then
      return nil, ("%d bytes at data offset %d belong to no tensor"):format(o[1] - pos, pos)
    end
    pos, prev = o[2], name
  end
  if pos ~= body then
    return nil, ("%d bytes after the last tensor belong to no tensor"):format(body - pos)
  end
  return result
end

-- An io/os error message without the file name the library put in front.
local function reason(err, ...)
  err = tostring(err)
  for _, name in ipairs { ... } do
    if err:sub(1, #name + 2) == name .. ": " then return err:sub(#name + 3) end
  end
  return err
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot read '%s': %s", path, reason(err, path)) end
  local data, rerr = f:read("a")
  f:close()
  if not data then fail("cannot read '%s': %s", path, reason(rerr, path)) end
  return data
end

-- Write via a temporary file and rename, so a failed export never leaves a
-- half-written file under the requested name.
local function write_file(path, data)
  local tmp = path .. ".tmp-synaptic"
  local f, err = io.open(tmp, "wb")
  if not f then fail("cannot write '%s': %s", path, reason(err, tmp)) end
  local ok, werr = f:write(data)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    fail("cannot write '%s': %s", path, reason(werr or cerr, tmp))
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    fail("cannot write '%s': %s", path, reason(rerr, tmp, path))
  end
end

---------------------------------------------------------------------------
-- Commands
---------------------------------------------------------------------------

local commands = {}

function commands.info(args)
  local store <close> = open_store(args.store, { read_only = true })
  local stats = check(store:storage_stats())
  local experts = array()
  for _, id in ipairs(check(store:list_experts()) or {}) do
    local cfg = check(store:get_config(id))
    local e = { id = id, config = cfg or json.null, parameter_count = 0, layers = array() }
    for _, l in ipairs(expert_layers(store, id)) do
      local w, b, info = get_weights(store, id, l.layer)
      if w then
        e.parameter_count = e.parameter_count + #w + #b
        e.layers[#e.layers + 1] = {
          layer = l.layer, versions = array(l.versions), latest = info.version,
          shape = info.shape and array(info.shape) or json.null,
          weights = #w, biases = #b, codec = info.codec,
          raw_bytes = info.raw_bytes, stored_bytes = info.stored_bytes,
          timestamp = info.timestamp,
        }
      end
    end
    experts[#experts + 1] = e
  end

  if args.json then
    print_json { store = args.store, synaptic_version = synaptic.version,
                 storage = stats, experts = experts }
    return 0
  end
  out("store        %s (synaptic %s)", args.store, synaptic.version)
  out("size         %s in %d files", stats.human_size, stats.file_count)
  out("weights      %d records: %s raw, %s stored (%.1f%%)", stats.weight_records,
      human(stats.raw_bytes), human(stats.stored_bytes), 100 * stats.compression_ratio)
  out("checkpoints  %d", stats.checkpoint_count)
  out("experts      %d", #experts)
  for _, e in ipairs(experts) do
    local cfg = e.config ~= json.null and e.config or nil
    local about = {}
    if cfg and cfg.domain then about[#about + 1] = "domain " .. tostring(cfg.domain) end
    if cfg and type(cfg.architecture) == "table" then
      about[#about + 1] = "architecture " .. table.concat(cfg.architecture, "-")
    end
    about[#about + 1] = ("%d parameters in %d layer%s"):format(
      e.parameter_count, #e.layers, #e.layers == 1 and "" or "s")
    out("")
    out("%s: %s", e.id, table.concat(about, ", "))
    if #e.layers > 0 then
      out("  %-6s %-8s %-9s %-10s %9s  %-8s %s", "layer", "version", "versions", "shape",
          "params", "codec", "stored")
    end
    for _, l in ipairs(e.layers) do
      local vs = l.versions
      local range = #vs == 1 and tostring(vs[1]) or ("%d-%d"):format(vs[1], vs[#vs])
      out("  %-6d %-8d %-9s %-10s %9d  %-8s %s", l.layer, l.latest, range,
          shape_text(l.shape ~= json.null and l.shape or { l.weights }),
          l.weights + l.biases, l.codec, human(l.stored_bytes))
    end
  end
  return 0
end

function commands.checkpoints(args)
  local store <close> = open_store(args.store, { read_only = true })
  local list = array()
  for _, id in ipairs(check(store:list_checkpoints()) or {}) do
    local cp = check(store:get_checkpoint(id))
    if cp then
      list[#list + 1] = {
        id = cp.id or id, created_at = cp.created_at, created_at_iso = iso_time(cp.created_at),
        system_version = cp.system_version or json.null,
        pin_count = #(cp.pins or {}), expert_count = #(cp.expert_states or {}),
        pins = array(cp.pins or {}),
      }
    end
  end
  if args.json then
    print_json { store = args.store, checkpoints = list }
    return 0
  end
  if #list == 0 then
    out("no checkpoints in %s", args.store)
    return 0
  end
  out("%-36s  %-20s  %-12s  %5s  %7s", "id", "created_at", "version", "pins", "experts")
  for _, c in ipairs(list) do
    local v = c.system_version ~= json.null and tostring(c.system_version) or "-"
    out("%-36s  %-20s  %-12s  %5d  %7d", c.id, c.created_at_iso, v, c.pin_count, c.expert_count)
  end
  return 0
end

function commands.verify(args)
  local store <close> = open_store(args.store, { read_only = true })
  local done = progress(args, "verifying " .. args.store)
  local ok, report = store:verify()
  done()
  if ok == nil then fail("verify: %s", one_line(report)) end
  local problems = array()
  for i, p in ipairs(report.problems or {}) do
    problems[i] = { where = p.where, error = p.error }
  end
  local records = report.records or 0
  if args.json then
    print_json { store = args.store, ok = ok, records = records, problems = problems }
  elseif ok then
    out("ok: %d records verified, no problems", records)
  else
    for _, p in ipairs(problems) do out("%s: %s", tostring(p.where), tostring(p.error)) end
  end
  if not ok then
    local first = problems[1]
    fail("verify failed: %d problem%s in %d records%s", #problems, #problems == 1 and "" or "s",
         records, first and (" (first: %s: %s)"):format(first.where, one_line(first.error)) or "")
  end
  return 0
end

function commands.compact(args)
  local store <close> = open_store(args.store)
  local before = check(store:storage_stats())
  local done = progress(args, "compacting " .. args.store)
  local ok, err = store:compact()
  done()
  if not ok then fail("compact: %s", one_line(err)) end
  local after = check(store:storage_stats())
  out("compacted %s: %s in %d files -> %s in %d files", args.store,
      human(before.total_bytes), before.file_count, human(after.total_bytes), after.file_count)
  return 0
end

function commands.backup(args)
  local store <close> = open_store(args.store)
  local done = progress(args, "backing up " .. args.store .. " to " .. args.dir)
  local id, err = store:backup(args.dir)
  done()
  if not id then fail("backup: %s", one_line(err)) end
  if args.json then
    local entry = { id = id, dir = args.dir }
    for _, b in ipairs(synaptic.list_backups(args.dir) or {}) do
      if b.id == id then entry.timestamp, entry.size, entry.files = b.timestamp, b.size, b.files end
    end
    print_json(entry)
  else
    out("%d", id)
  end
  return 0
end

function commands.restore(args)
  local store_path, dir = args.store, args.dir
  if exists(store_path) then
    if is_file(store_path) then fail("'%s' exists and is not a directory", store_path) end
    if not dir_is_empty(store_path) and not args.force then
      fail("'%s' exists and is not empty; use --force to replace it", store_path)
    end
  end
  local backups, err = synaptic.list_backups(dir)
  if not backups then fail("%s", one_line(err)) end
  if #backups == 0 then fail("no backups in '%s'", dir) end
  local chosen = backups[#backups]
  if args.id then
    chosen = nil
    local ids = {}
    for _, b in ipairs(backups) do
      ids[#ids + 1] = tostring(b.id)
      if b.id == args.id then chosen = b end
    end
    if not chosen then
      fail("no backup %d in '%s' (there are: %s)", args.id, dir, table.concat(ids, ", "))
    end
  end
  local done = progress(args, ("restoring backup %d into %s"):format(chosen.id, store_path))
  local ok, rerr = synaptic.restore_backup(dir, store_path, chosen.id)
  done()
  if not ok then fail("restore: %s", one_line(rerr)) end
  out("restored backup %d (%s, %s) into %s", chosen.id, iso_time(chosen.timestamp),
      human(chosen.size or 0), store_path)
  return 0
end

function commands.export(args)
  local store <close> = open_store(args.store, { read_only = true })
  local expert = args.expert
  local layers = expert_layers(store, expert)
  if #layers == 0 then fail("expert '%s' has no weights in %s", expert, args.store) end

  -- which version of each layer: latest, --version N, or --checkpoint ID's pins
  local want = {}
  if args.checkpoint then
    local cp = check(store:get_checkpoint(args.checkpoint))
    if not cp then fail("no checkpoint '%s' in %s", args.checkpoint, args.store) end
    for _, pin in ipairs(cp.pins or {}) do
      if pin.expert_id == expert then want[pin.layer] = pin.version end
    end
    if not next(want) then fail("checkpoint %s pins no weights of expert '%s'", args.checkpoint, expert) end
  end

  local tensors, versions, report = {}, {}, array()
  for _, l in ipairs(layers) do
    local version = args.version or want[l.layer]
    if not args.checkpoint or version then
      local w, b, info = get_weights(store, expert, l.layer, version)
      if not w then
        fail("expert '%s' layer %d has no version %s (it has %s)", expert, l.layer, tostring(version),
             table.concat(l.versions, ", "))
      end
      local shape = info.shape or { #w }
      local base = "layer" .. l.layer
      tensors[#tensors + 1] = { name = base .. ".weight", shape = shape, data = w }
      tensors[#tensors + 1] = { name = base .. ".bias", shape = { #b }, data = b }
      versions[#versions + 1] = { tostring(l.layer), info.version }
      report[#report + 1] = { layer = l.layer, version = info.version, shape = array(shape),
                              weights = #w, biases = #b }
    end
  end

  local data = safetensors.encode(tensors, {
    format = "synaptic",
    expert_id = expert,
    synaptic_version = synaptic.version,
    versions = ordered_object(versions),
  })
  write_file(args.file, data)
  if args.json then
    print_json { file = args.file, expert = expert, bytes = #data, layers = report }
  else
    out("exported %s (%d layer%s, %s) to %s", expert, #report, #report == 1 and "" or "s",
        human(#data), args.file)
  end
  return 0
end

-- Tensors named layer<L>.weight / layer<L>.bias, grouped by layer.
local function layers_from_safetensors(file)
  local st, err = safetensors.decode(read_file(file))
  if not st then fail("%s: %s", file, err) end
  local by_layer, list = {}, {}
  for _, name in ipairs(st.order) do
    local digits, part = name:match("^layer(%d+)%.(%a+)$")
    local layer = digits and math.tointeger(tonumber(digits))
    if not layer or tostring(layer) ~= digits or (part ~= "weight" and part ~= "bias") then
      fail("%s: unexpected tensor '%s' (expected layer<N>.weight and layer<N>.bias)", file, name)
    end
    local l = by_layer[layer]
    if not l then
      l = { layer = layer }
      by_layer[layer] = l
      list[#list + 1] = l
    end
    l[part] = st.tensors[name]
  end
  table.sort(list, function(a, b) return a.layer < b.layer end)
  for _, l in ipairs(list) do
    if not l.weight then fail("%s: layer%d.bias has no layer%d.weight", file, l.layer, l.layer) end
    if #l.weight.shape == 0 then
      fail("%s: layer%d.weight is a scalar; expected a vector or a matrix", file, l.layer)
    end
    if l.weight.data_offsets[1] == l.weight.data_offsets[2] then
      fail("%s: layer%d.weight is empty", file, l.layer)
    end
    if l.bias and #l.bias.shape ~= 1 then
      fail("%s: layer%d.bias has rank %d; expected a vector", file, l.layer, #l.bias.shape)
    end
  end
  if #list == 0 then fail("%s: no layer<N>.weight tensors", file) end
  return list
end

function commands.import(args)
  -- Read and validate the whole file before the store is touched.
  local layers = layers_from_safetensors(args.file)
  if not args.create then check_store_path(args.store) end
  local store <close> = (function()
    local s, err = synaptic.open(args.store)
    if not s then fail("%s", err) end
    return s
  end)()
  local expert = args.expert
  local ok, err = pcall(store.batch, store, function(b)
    for _, l in ipairs(layers) do
      -- a vector is stored without a shape, as export writes shapeless weights
      local meta = #l.weight.shape >= 2 and { shape = l.weight.shape } or nil
      local ok, err = pcall(b.put_weights, b, expert, l.layer, synaptic.floats(l.weight.bytes),
                            synaptic.floats(l.bias and l.bias.bytes or ""), meta)
      if not ok then error(("layer %d: %s"):format(l.layer, tostring(err)), 0) end
    end
  end)
  if not ok then fail("import into '%s' failed, nothing written: %s", expert, one_line(err)) end
  local report = array()
  for i, l in ipairs(layers) do
    local _, _, info = get_weights(store, expert, l.layer)
    report[i] = { layer = l.layer, version = info.version }
  end
  if args.json then
    print_json { file = args.file, expert = expert, layers = report }
  else
    local parts = {}
    for i, r in ipairs(report) do parts[i] = ("layer %d v%d"):format(r.layer, r.version) end
    out("imported %s into %s: %s", args.file, expert, table.concat(parts, ", "))
  end
  return 0
end

-- serve: a P2P node over the store until --seconds have passed (or for
-- ever). The first line is the bound address (flushed, so a script can
-- read it and start the next peer); stats are printed at exit.
local STAT_ORDER = { "weights_sent", "weights_received", "configs_sent", "configs_received",
                     "checkpoints_sent", "checkpoints_received", "conflicts", "rejected",
                     "bytes_sent", "bytes_received", "sync_rounds" }

function commands.serve(args)
  local store <close> = open_store(args.store)
  local ok, cfg = pcall(synaptic.p2p_config, {
    node_id = args.node_id, listen = args.listen, peers = args.peer,
    heartbeat_interval_seconds = args.heartbeat,
    sync_interval_seconds = args.sync_interval,
    peer_timeout_seconds = math.max(30, args.heartbeat * 6),
    max_peers = math.max(10, #args.peer + 1),
  })
  if not ok then fail("%s", tostring(cfg):gsub("^.-p2p_config: ", "")) end
  local node, err = synaptic.node(store, cfg)
  if not node then fail("%s", err) end
  local address = node:address()
  if args.json then
    io.stdout:write(ordered_object { { "address", address or json.null }, { "node_id", node:node_id() } }, "\n")
  else
    out("%s", address or "(not listening)")
  end
  io.stdout:flush()
  if args.seconds then
    check(node:run(args.seconds))
  else
    while true do check(node:run(3600)) end
  end
  local stats, peers = node:stats(), node:peers()
  node:close()
  if args.json then
    print_json { address = address or json.null, node_id = cfg.node_id or store:origin(),
                 stats = stats, peers = array(peers) }
  else
    for _, k in ipairs(STAT_ORDER) do out("%-21s %d", k, stats[k] or 0) end
    for _, p in ipairs(peers) do out("peer %s %s", p.id, p.state) end
  end
  return 0
end

local function module_dir()
  local path = package.searchpath("synaptic.cli", package.path)
  return path and path:match("^(.*)/[^/]*$")
end

local function find_demo()
  local candidates = {}
  local dir = module_dir()
  if dir then candidates[#candidates + 1] = dir .. "/../../../examples/persistence_demo.lua" end
  candidates[#candidates + 1] = "examples/persistence_demo.lua"
  for _, c in ipairs(candidates) do
    if is_file(c) then return c end
  end
  fail("cannot find examples/persistence_demo.lua (run from the synaptic source tree)")
end

-- The interpreter running us, as invoked (arg's lowest index).
local function interpreter()
  local a, i = rawget(_G, "arg"), -1
  if type(a) ~= "table" or not a[-1] then return "lua5.4" end
  while a[i - 1] do i = i - 1 end
  return a[i]
end

function commands.demo(args)
  local demo = find_demo()
  local dir = args.dir
  if dir then
    -- the demo deletes DIR, DIR-backups and DIR-restored before it starts
    if exists(dir) and not dir_is_empty(dir) and not is_file(dir .. "/CURRENT") and not args.force then
      fail("'%s' is not empty and not a store; the demo replaces it (use --force)", dir)
    end
  else
    local t = os.tmpname()
    os.remove(t)
    assert(os.execute("mkdir -p " .. shell_quote(t)))
    dir = t .. "/neural_storage"
  end
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s %s %s %s"):format(
    shell_quote(package.path), shell_quote(package.cpath), shell_quote(interpreter()),
    shell_quote(demo), shell_quote(dir))
  io.stdout:flush()
  local ok, how, code = os.execute(cmd)
  if ok then return 0 end
  if how == "signal" then fail("demo killed by signal %d", code) end
  return code ~= 0 and code or EXIT_FAILURE
end

---------------------------------------------------------------------------
-- Arguments
---------------------------------------------------------------------------

local function positive_integer(what)
  return function(s)
    local n = math.tointeger(tonumber(s))
    if n and n > 0 then return n end
    return nil, ("%s must be a positive integer, got '%s'"):format(what, s)
  end
end

local function positive_number(what)
  return function(s)
    local n = tonumber(s)
    if n and n > 0 and n < 1e9 then return n end
    return nil, ("%s must be a positive number, got '%s'"):format(what, s)
  end
end

local function build_parser()
  local p = argparse("synaptic", "Inspect and maintain a synaptic store.")
    :epilog("Usage is synaptic COMMAND STORE [ARGS]; 'synaptic COMMAND --help' describes one command.\n" ..
            "Exit codes: 0 success, 1 failure, 2 usage error.")
    :command_target("command")
    :help_max_width(80)
  p:flag("--version", "Print the synaptic version and exit.")

  local function json_flag(c) c:flag("--json", "Print machine-readable JSON (and nothing else) on stdout.") end
  local function store_arg(c) c:argument("store", "Path of the store.") end

  local c = p:command("info", "Storage statistics, and every expert with its layers, versions and parameters.")
  store_arg(c) json_flag(c)

  c = p:command("checkpoints", "List checkpoints, oldest first.")
  store_arg(c) json_flag(c)

  c = p:command("verify", "Check every record, checksum and checkpoint pin; exit 1 if anything is wrong.")
  store_arg(c) json_flag(c)

  c = p:command("compact", "Compact the store's files.")
  store_arg(c)

  c = p:command("backup", "Add an incremental backup of the store to DIR; prints the backup id.")
  store_arg(c) c:argument("dir", "Backup directory (created if needed).") json_flag(c)

  c = p:command("restore", "Restore a backup from DIR into the store path (the latest unless --id).")
  c:argument("store", "Path to restore into; must be absent or empty unless --force.")
  c:argument("dir", "Backup directory.")
  c:option("--id", "Backup id to restore."):argname("<n>"):convert(positive_integer("--id"))
  c:flag("--force", "Restore even if the store path is not empty.")

  c = p:command("export", "Write an expert's weights to a safetensors file.")
  store_arg(c) c:argument("expert", "Expert id.") c:argument("file", "safetensors file to write.")
  c:mutex(
    c:option("--version", "Export this version of every layer (default: the latest).")
      :argname("<n>"):convert(positive_integer("--version")),
    c:option("--checkpoint", "Export the versions this checkpoint pins."):argname("<id>"))
  json_flag(c)

  c = p:command("import", "Read a safetensors file written by export (layer<N>.weight/.bias) as new versions.")
  store_arg(c) c:argument("expert", "Expert id to import into.") c:argument("file", "safetensors file to read.")
  c:flag("--create", "Create the store if it does not exist.")
  json_flag(c)

  c = p:command("serve", "Sync the store with peers over ZeroMQ (P2P); prints the bound address first, stats at exit.")
  store_arg(c)
  c:option("--listen", "Endpoint to listen on, e.g. tcp://127.0.0.1:0 (port 0: any free port)."):argname("<endpoint>")
  c:option("--peer", "A peer's endpoint to connect to (repeatable)."):argname("<endpoint>"):count("*")
  c:option("--node-id", "This node's id (default: the store's origin)."):argname("<id>")
  c:option("--seconds", "Run this long, then exit (default: for ever)."):argname("<s>")
    :convert(positive_number("--seconds"))
  c:option("--heartbeat", "Seconds between heartbeats."):argname("<s>")
    :convert(positive_number("--heartbeat")):default("1")
  c:option("--sync-interval", "Seconds between anti-entropy rounds."):argname("<s>")
    :convert(positive_number("--sync-interval")):default("10")
  json_flag(c)

  c = p:command("demo", "Run examples/persistence_demo.lua.")
  c:argument("dir", "Where the demo keeps its store (default: a new temporary directory); it is replaced.")
    :args("?")
  c:flag("--force", "Let the demo replace DIR even if it holds other files.")
  return p
end

-- argparse's own --help prints and calls os.exit; run() must return instead,
-- so -h/--help is found here first: the help of the command it follows, or
-- the program's.
local function help_request(parser, argv)
  local command
  for _, a in ipairs(argv) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      if command then
        for _, c in ipairs(parser._commands) do
          if c._name == command then return c:get_help() end
        end
      end
      return parser:get_help()
    end
    if not command and a:sub(1, 1) ~= "-" then command = a end
  end
  return nil
end

--- Run the command line in argv (a list, e.g. the global `arg`); returns
-- the exit code.
function cli.run(argv)
  local list = {}
  for i, a in ipairs(argv or {}) do list[i] = tostring(a) end
  local parser = build_parser()

  local help = help_request(parser, list)
  if help then
    io.stdout:write(help, "\n")
    return 0
  end
  if list[1] == "--version" then
    out("synaptic %s", synaptic.version)
    return 0
  end

  local ok, args = parser:pparse(list)
  if not ok then
    io.stderr:write("synaptic: ", one_line(args:gsub("\nDid you mean", "; did you mean")),
                    " (see synaptic --help)\n")
    return EXIT_USAGE
  end

  local traceback
  local okc, res = xpcall(commands[args.command], function(e)
    if getmetatable(e) ~= Failure then traceback = debug.traceback(tostring(e), 2) end
    return e
  end, args)
  if okc then return res or 0 end
  io.stdout:flush()
  if getmetatable(res) == Failure then
    io.stderr:write("synaptic: ", one_line(res.msg), "\n")
    return res.code
  end
  -- A raised error (a bug, or the API refusing an argument): still one line,
  -- with the traceback on request.
  io.stderr:write("synaptic: ", args.command, ": ", one_line(res), "\n")
  if os.getenv("SYNAPTIC_DEBUG") then io.stderr:write(traceback or "", "\n") end
  return EXIT_FAILURE
end

return cli
