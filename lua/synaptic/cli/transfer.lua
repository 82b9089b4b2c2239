--- Weights in and out of a store as safetensors files: export, import.
-- One tensor pair per layer, layer<L>.weight (shape {out, in}, or {n} for a
-- shapeless vector) and layer<L>.bias; the file's metadata names the expert
-- and the version of each layer. Import also takes other names (<name>.weight
-- and <name>.bias, layers by --map or by name order) and F16, BF16 and F64
-- tensors, converted to F32.
local synaptic = require "synaptic"
local safetensors = require "synaptic.safetensors"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local array, out = output.array, output.out

local commands = {}

-- "fc1=1,fc2=2" -> { fc1 = 1, fc2 = 2 }: names unique, layers unique
-- non-negative integers.
local function layer_map(s)
  local map, used = {}, {}
  for item in (s .. ","):gmatch("([^,]*),") do
    local name, layer = item:match("^%s*(.-)%s*=%s*(%d+)%s*$")
    layer = layer and math.tointeger(tonumber(layer))
    if not name or name == "" or not layer then
      return nil, ("--map entries are name=layer, got '%s'"):format(item)
    end
    if map[name] then return nil, ("--map names '%s' twice"):format(name) end
    if used[layer] then return nil, ("--map gives layer %d twice"):format(layer) end
    map[name], used[layer] = layer, true
  end
  return map
end

-- Which version of each layer to export: layer -> version, or nil for each
-- layer's --version N or latest.
local function pinned_versions(store, args)
  if not args.checkpoint then return nil end
  local cp = check(store:get_checkpoint(args.checkpoint))
  if not cp then fail("no checkpoint '%s' in %s", args.checkpoint, args.store) end
  local want = {}
  for _, pin in ipairs(cp.pins or {}) do
    if pin.expert_id == args.expert then want[pin.layer] = pin.version end
  end
  if not next(want) then
    fail("checkpoint %s pins no weights of expert '%s'", args.checkpoint, args.expert)
  end
  return want
end

function commands.export(args)
  local store <close> = common.open_store(args.store, { read_only = true })
  local expert = args.expert
  local layers = common.expert_layers(store, expert)
  if #layers == 0 then fail("expert '%s' has no weights in %s", expert, args.store) end
  local want = pinned_versions(store, args)

  local tensors, versions, report = {}, {}, array()
  local done, update = output.progress(args, "exporting " .. expert, "layers")
  for i, l in ipairs(layers) do
    update(i - 1, #layers)
    local version = args.version or (want and want[l.layer])
    if not want or version then
      local w, b, info = common.get_weights(store, expert, l.layer, version)
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

  update(#layers, #layers)
  done()
  local size, err = safetensors.write(args.file, tensors, {
    format = "synaptic",
    expert_id = expert,
    synaptic_version = synaptic.version,
    versions = output.ordered_object(versions),
  })
  if not size then fail("%s", err) end
  if args.json then
    output.print_json { file = args.file, expert = expert, bytes = size, layers = report }
  else
    out("exported %s (%d layer%s, %s) to %s", expert, #report, #report == 1 and "" or "s",
        output.human(size), args.file)
  end
  return 0
end

-- A tensor's group and part: "fc1.weight" -> "fc1", "weight". A name
-- without that suffix is a weight only when --map names it.
local function split_name(name, map)
  local base, part = name:match("^(.+)%.(%a+)$")
  if base and (part == "weight" or part == "bias") then return base, part end
  if map and map[name] then return name, "weight" end
  return nil
end

-- "fc2" < "fc10": digit runs compare as numbers, so order is what a
-- person means by "in order" (the reference writer stores tensors sorted
-- by name, fc10 before fc2, so the file's own order would not do).
local function natural_less(a, b)
  local function key(s)
    return (s:gsub("%d+", function(d) return ("%012d"):format(tonumber(d)) end))
  end
  local ka, kb = key(a), key(b)
  if ka ~= kb then return ka < kb end
  return a < b
end

-- N for "layer<N>" (no leading zeros), else nil.
local function layer_number(name)
  local digits = name:match("^layer(%d+)$")
  local n = digits and math.tointeger(tonumber(digits))
  if n and tostring(n) == digits then return n end
  return nil
end

-- The layer of each group: --map, else layer<N> names, else the natural
-- order of the names from 1.
local function assign_layers(file, groups, map)
  local list = {}
  for _, g in pairs(groups) do list[#list + 1] = g end
  table.sort(list, function(a, b) return natural_less(a.name, b.name) end)
  local all_numbered = true
  for _, g in ipairs(list) do all_numbered = all_numbered and layer_number(g.name) ~= nil end
  for i, g in ipairs(list) do
    if map then
      g.layer = map[g.name]
      if not g.layer then fail("%s: tensor group '%s' is not in --map", file, g.name) end
    else
      g.layer = all_numbered and layer_number(g.name) or i
    end
  end
  for name in pairs(map or {}) do
    if not groups[name] then fail("%s: --map names '%s', which the file does not have", file, name) end
  end
  table.sort(list, function(a, b) return a.layer < b.layer end)
  return list
end

-- The file's tensors grouped into layers: {name, layer, weight = t, bias = t?}.
local function group_tensors(file, st, map)
  local groups = {}
  for _, name in ipairs(st.order) do
    local base, part = split_name(name, map)
    if not base then
      fail("%s: unexpected tensor '%s' (expected <name>.weight and <name>.bias, or name it in --map)",
           file, name)
    end
    local g = groups[base] or { name = base }
    groups[base] = g
    if g[part] then fail("%s: two tensors for %s.%s", file, base, part) end
    g[part] = st.tensors[name]
  end
  return assign_layers(file, groups, map)
end

-- Layers a store can take: a weight of rank 1 or more with data, and a
-- bias, if any, that is a vector; every tensor converted to F32 bytes.
local function layers_from_safetensors(file, map)
  local list = group_tensors(file, check(safetensors.read(file)), map)
  for _, l in ipairs(list) do
    local w = l.name .. ".weight"
    if not l.weight then fail("%s: %s.bias has no %s", file, l.name, w) end
    if #l.weight.shape == 0 then
      fail("%s: %s is a scalar; expected a vector or a matrix", file, w)
    end
    if l.weight.data_offsets[1] == l.weight.data_offsets[2] then
      fail("%s: %s is empty", file, w)
    end
    if l.bias and #l.bias.shape ~= 1 then
      fail("%s: %s.bias has rank %d; expected a vector", file, l.name, #l.bias.shape)
    end
    l.weight_f32 = check(safetensors.to_f32(l.weight))
    l.bias_f32 = l.bias and check(safetensors.to_f32(l.bias)) or ""
  end
  if #list == 0 then fail("%s: no weight tensors", file) end
  return list
end

-- The list of layer sizes an expert's config gives ({ 64, 128, 32 } or
-- { layers = { ... } }), or nil when it has none to check against.
local function architecture(store, expert)
  local cfg = store:get_config(expert)
  local arch = cfg and cfg.architecture
  if type(arch) == "table" and type(arch.layers) == "table" then arch = arch.layers end
  if type(arch) ~= "table" or #arch < 2 then return nil end
  for _, n in ipairs(arch) do
    if math.type(n) ~= "integer" or n < 1 then return nil end
  end
  return arch
end

-- Layer l maps arch[l] inputs to arch[l + 1] outputs (weights { out, in },
-- biases out), as the runtime stores them: anything else would import fine
-- and then leave a runtime unable to open the expert.
local function check_architecture(arch, expert, layers)
  for _, l in ipairs(layers) do
    if l.layer < 1 or l.layer >= #arch then
      fail("layer %d: %s's architecture has layers 1 to %d", l.layer, expert, #arch - 1)
    end
    local n_in, n_out = arch[l.layer], arch[l.layer + 1]
    local n = #l.weight_f32 // 4
    local shape = l.weight.shape
    if n ~= n_in * n_out or (#shape >= 2 and (#shape ~= 2 or shape[1] ~= n_out or shape[2] ~= n_in)) then
      fail("layer %d (%s): shape [%s] does not match %s's architecture, which needs [%d, %d]", l.layer,
           l.name, table.concat(shape, ", "), expert, n_out, n_in)
    end
    if l.bias and #l.bias_f32 // 4 ~= n_out then
      fail("layer %d (%s): %d biases where %s's architecture needs %d", l.layer, l.name,
           #l.bias_f32 // 4, expert, n_out)
    end
  end
end

local function dims_text(shape, n)
  return shape and table.concat(shape, ", ") or tostring(n)
end

-- With no config to check against, what is stored is the reference: a
-- layer that exists keeps its shape (weights and biases) unless --force,
-- so that importing the wrong file cannot silently reshape an expert.
local function check_stored(store, expert, layers)
  for _, l in ipairs(layers) do
    local w, b, info = common.get_weights(store, expert, l.layer)
    if w then
      local n, nb = #l.weight_f32 // 4, #l.bias_f32 // 4
      local shape = #l.weight.shape >= 2 and l.weight.shape or nil
      local same = n == #w and nb == #b
      if same and shape and info.shape then
        same = #shape == #info.shape
        for i = 1, #shape do same = same and shape[i] == info.shape[i] end
      end
      if not same then
        fail("layer %d (%s): weights [%s] and %d biases differ from the stored layer's [%s] and %d; "
             .. "'%s' has no config to check against: use --force to replace them", l.layer, l.name,
             dims_text(shape, n), nb, dims_text(info.shape, #w), #b, expert)
      end
    end
  end
end

function commands.import(args)
  -- Read and validate the whole file before the store is touched.
  local layers = layers_from_safetensors(args.file, args.map)
  local store <close> = common.open_store(args.store, { create = args.create })
  local expert = args.expert
  local arch = architecture(store, expert)
  if arch then check_architecture(arch, expert, layers)
  elseif not args.force then check_stored(store, expert, layers) end
  local total, written = 0, 0
  for _, l in ipairs(layers) do total = total + #l.weight.bytes + (l.bias and #l.bias.bytes or 0) end
  local done, update = output.progress(args, "importing " .. args.file, "bytes")
  local ok, err = pcall(store.batch, store, function(b)
    for _, l in ipairs(layers) do
      update(written, total)
      written = written + #l.weight.bytes + (l.bias and #l.bias.bytes or 0)
      -- a vector is stored without a shape, as export writes shapeless weights
      local meta = #l.weight.shape >= 2 and { shape = l.weight.shape } or nil
      local ok, err = pcall(b.put_weights, b, expert, l.layer, synaptic.floats(l.weight_f32),
                            synaptic.floats(l.bias_f32), meta)
      if not ok then error(("layer %d: %s"):format(l.layer, tostring(err)), 0) end
    end
  end)
  update(total, total)
  done()
  if not ok then fail("import into '%s' failed, nothing written: %s", expert, output.one_line(err)) end
  local report = array()
  for i, l in ipairs(layers) do
    local _, _, info = common.get_weights(store, expert, l.layer)
    report[i] = { layer = l.layer, version = info.version, tensor = l.name, dtype = l.weight.dtype }
  end
  if args.json then
    output.print_json { file = args.file, expert = expert, layers = report }
  else
    local parts = {}
    for i, r in ipairs(report) do
      local from = r.tensor ~= "layer" .. r.layer and " from " .. r.tensor or ""
      local dtype = r.dtype ~= "F32" and (" (%s to F32)"):format(r.dtype) or ""
      parts[i] = ("layer %d v%d%s%s"):format(r.layer, r.version, from, dtype)
    end
    out("imported %s into %s: %s", args.file, expert, table.concat(parts, ", "))
  end
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("export", "Write an expert's weights to a safetensors file.")
  arguments.store_arg(c) c:argument("expert", "Expert id.") c:argument("file", "safetensors file to write.")
  c:mutex(
    c:option("--version", "Export this version of every layer (default: the latest).")
      :argname("<n>"):convert(arguments.positive_integer("--version")),
    c:option("--checkpoint", "Export the versions this checkpoint pins."):argname("<id>"))
  arguments.json_flag(c)

  c = p:command("import", "Read a safetensors file's weights and biases (F32, F16, BF16 or F64) as new versions.")
  arguments.store_arg(c) c:argument("expert", "Expert id to import into.") c:argument("file", "safetensors file to read.")
  c:flag("--create", "Create the store if it does not exist.")
  c:flag("--force", "Import into an expert with no config even if the shapes differ from the stored layers'.")
  c:option("--map", "Layer of each tensor group, e.g. fc1=1,fc2=2 (default: layer<N> names, else name order)."):argname("<name=layer,...>")
    :convert(layer_map)
  arguments.json_flag(c)
end

function M.command(args)
  return commands[args.command](args)
end

return M
