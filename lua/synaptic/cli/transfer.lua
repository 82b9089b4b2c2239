--- Weights in and out of a store as safetensors files: export, import.
-- One tensor pair per layer, layer<L>.weight (shape {out, in}, or {n} for a
-- shapeless vector) and layer<L>.bias; the file's metadata names the expert
-- and the version of each layer.
local synaptic = require "synaptic"
local safetensors = require "synaptic.safetensors"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local check, fail = common.check, common.fail
local array, out = output.array, output.out

local commands = {}

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

-- The file's tensors grouped by layer: {layer = L, weight = t, bias = t?}.
local function group_by_layer(file, st)
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
  return list
end

-- Layers a store can take: a weight of rank 1 or more with data, and a
-- bias, if any, that is a vector.
local function layers_from_safetensors(file)
  local list = group_by_layer(file, check(safetensors.read(file)))
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
  local store <close> = common.open_store(args.store, { create = args.create })
  local expert = args.expert
  local total, written = 0, 0
  for _, l in ipairs(layers) do total = total + #l.weight.bytes + (l.bias and #l.bias.bytes or 0) end
  local done, update = output.progress(args, "importing " .. args.file, "bytes")
  local ok, err = pcall(store.batch, store, function(b)
    for _, l in ipairs(layers) do
      update(written, total)
      written = written + #l.weight.bytes + (l.bias and #l.bias.bytes or 0)
      -- a vector is stored without a shape, as export writes shapeless weights
      local meta = #l.weight.shape >= 2 and { shape = l.weight.shape } or nil
      local ok, err = pcall(b.put_weights, b, expert, l.layer, synaptic.floats(l.weight.bytes),
                            synaptic.floats(l.bias and l.bias.bytes or ""), meta)
      if not ok then error(("layer %d: %s"):format(l.layer, tostring(err)), 0) end
    end
  end)
  update(total, total)
  done()
  if not ok then fail("import into '%s' failed, nothing written: %s", expert, output.one_line(err)) end
  local report = array()
  for i, l in ipairs(layers) do
    local _, _, info = common.get_weights(store, expert, l.layer)
    report[i] = { layer = l.layer, version = info.version }
  end
  if args.json then
    output.print_json { file = args.file, expert = expert, layers = report }
  else
    local parts = {}
    for i, r in ipairs(report) do parts[i] = ("layer %d v%d"):format(r.layer, r.version) end
    out("imported %s into %s: %s", args.file, expert, table.concat(parts, ", "))
  end
  return 0
end

return commands
