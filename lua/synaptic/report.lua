--- synaptic.report: one self-contained HTML page of charts about a store.
-- Pure Lua. collect() reads what the charts need from an open store (one
-- get_weights per layer's latest version, never every version's payload);
-- render() turns that table into HTML with inline SVG and CSS: no scripts,
-- no fonts, no URLs, so the page opens offline and from a mail attachment.
-- Every string that came from the store or a node's stats goes through
-- escape(): expert ids, metric names and peer ids are user data.
local report = {}

-- Above this many samples a metric is drawn as a per-pixel-column min/max
-- envelope without one marker per sample: a marker per point of a
-- million-point series would make a page no browser wants to open.
report.MAX_MARKERS = 2000

---------------------------------------------------------------------------
-- Text
---------------------------------------------------------------------------

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- HTML-escapes any value's text, safe in element content and in quoted
-- attributes alike.
function report.escape(s)
  return (tostring(s):gsub("[&<>\"']", ENTITIES))
end
local esc = report.escape

-- A label cut to n characters (UTF-8 aware, so a cut never splits a
-- character); the full text stays in the element's <title>.
local function shorten(s, n)
  s = tostring(s)
  local ok, len = pcall(utf8.len, s)
  if not ok or not len or len <= n then return s end
  return s:sub(1, utf8.offset(s, n) - 1) .. "…"
end

local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  return (("%.4g"):format(v))
end

function report.human_bytes(bytes)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local n, u = bytes, 1
  while n >= 1024 and u < #units do n, u = n / 1024, u + 1 end
  if u == 1 then return ("%d B"):format(bytes) end
  return ("%.1f %s"):format(n, units[u])
end

local function iso(t)
  return os.date("!%Y-%m-%d %H:%M:%S", math.floor(t))
end

-- Time-axis labels short enough to fit, chosen by the span shown.
local function time_label(t, span)
  if span >= 2 * 86400 then return os.date("!%Y-%m-%d", math.floor(t)) end
  if span >= 120 then return os.date("!%m-%d %H:%M", math.floor(t)) end
  return os.date("!%H:%M:%S", math.floor(t))
end

local function f2(x) return ("%.1f"):format(x) end

---------------------------------------------------------------------------
-- Axes
---------------------------------------------------------------------------

-- Round tick values (1, 2 or 5 times a power of ten) covering lo..hi.
local function nice_ticks(lo, hi, count)
  local span = hi - lo
  local raw = span / count
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs { 1, 2, 5, 10 } do
    if raw <= m * mag then step = m * mag; break end
  end
  local ticks = {}
  local t = math.ceil(lo / step) * step
  while t <= hi + step * 1e-9 and #ticks < 20 do
    ticks[#ticks + 1] = math.abs(t) < step * 1e-9 and 0 or t
    t = t + step
  end
  return ticks
end

-- A range with room: a single value gets a band around it.
local function padded(lo, hi)
  if lo == hi then
    local d = math.abs(lo) * 0.1
    if d == 0 then d = 1 end
    return lo - d, hi + d
  end
  local d = (hi - lo) * 0.05
  return lo - d, hi + d
end

-- The same for a time axis: one instant is shown with an hour either side
-- (10 % of a Unix time is years).
local function padded_time(t0, t1)
  if t0 == t1 then return t0 - 3600, t1 + 3600 end
  return padded(t0, t1)
end

---------------------------------------------------------------------------
-- Line chart: one <circle class="point"> per sample
---------------------------------------------------------------------------

local LW, LH = 900, 240
local ML, MR, MT, MB = 64, 16, 12, 36

-- Five time labels; the end ones anchored inwards so they are not cut.
local function time_ticks(out, x0, x1, sx, y)
  local span = x1 - x0
  for i = 0, 4 do
    local t = x0 + span * i / 4
    local anchor = i == 0 and "start" or i == 4 and "end" or "middle"
    out[#out + 1] = ('<text class="tick" x="%s" y="%d" text-anchor="%s">%s</text>')
      :format(f2(sx(t)), y, anchor, esc(time_label(t, span)))
  end
end

local function line_axes(out, x0, x1, y0, y1, sx, sy)
  for _, v in ipairs(nice_ticks(y0, y1, 5)) do
    local y = sy(v)
    out[#out + 1] = ('<line class="grid" x1="%d" y1="%s" x2="%d" y2="%s"/>'):format(ML, f2(y), LW - MR, f2(y))
    out[#out + 1] = ('<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>'):format(ML - 6, f2(y + 4), num(v))
  end
  time_ticks(out, x0, x1, sx, LH - MB + 18)
  out[#out + 1] = ('<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>'):format(ML, LH - MB, LW - MR, LH - MB)
end

-- Per pixel column, the first, lowest, highest and last sample, in time
-- order: the same picture as every sample for any series wider than the
-- chart.
local function envelope(points, sx, sy)
  local cols, order = {}, {}
  for _, p in ipairs(points) do
    local c = math.floor(sx(p.timestamp))
    local col = cols[c]
    if not col then
      col = { first = p, last = p, lo = p, hi = p }
      cols[c] = col
      order[#order + 1] = c
    end
    col.last = p
    if p.value < col.lo.value then col.lo = p end
    if p.value > col.hi.value then col.hi = p end
  end
  local path = {}
  for _, c in ipairs(order) do
    local col = cols[c]
    for _, p in ipairs { col.first, col.lo, col.hi, col.last } do
      path[#path + 1] = (#path == 0 and "M" or "L") .. f2(c) .. " " .. f2(sy(p.value))
    end
  end
  return table.concat(path, " ")
end

--- An SVG line chart of points ({timestamp =, value =}, ascending by
-- timestamp): one <circle class="point"> per point (up to MAX_MARKERS),
-- a polyline through them. attrs: extra attribute text for the <svg>.
function report.line_chart(points, attrs)
  local x0, x1 = math.huge, -math.huge
  local y0, y1 = math.huge, -math.huge
  for _, p in ipairs(points) do
    x0, x1 = math.min(x0, p.timestamp), math.max(x1, p.timestamp)
    y0, y1 = math.min(y0, p.value), math.max(y1, p.value)
  end
  x0, x1 = padded_time(x0, x1)
  y0, y1 = padded(y0, y1)
  local function sx(t) return ML + (t - x0) / (x1 - x0) * (LW - ML - MR) end
  local function sy(v) return LH - MB - (v - y0) / (y1 - y0) * (LH - MT - MB) end
  local out = { ('<svg class="line" viewBox="0 0 %d %d" width="%d" height="%d" role="img"%s>')
                :format(LW, LH, LW, LH, attrs and " " .. attrs or "") }
  line_axes(out, x0, x1, y0, y1, sx, sy)
  if #points > report.MAX_MARKERS then
    out[#out + 1] = ('<path class="series" d="%s"/>'):format(envelope(points, sx, sy))
  else
    local path = {}
    for i, p in ipairs(points) do
      path[i] = (i == 1 and "M" or "L") .. f2(sx(p.timestamp)) .. " " .. f2(sy(p.value))
    end
    out[#out + 1] = ('<path class="series" d="%s"/>'):format(table.concat(path, " "))
    for _, p in ipairs(points) do
      out[#out + 1] = ('<circle class="point" cx="%s" cy="%s" r="3"><title>%s UTC: %s</title></circle>')
        :format(f2(sx(p.timestamp)), f2(sy(p.value)), iso(p.timestamp), num(p.value))
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------
-- Bar chart: one <rect class="bar"> per row, horizontal (ids are long)
---------------------------------------------------------------------------

local BW, LABEL_W, VALUE_W, ROW_H = 900, 230, 110, 22

--- An SVG horizontal bar chart. rows: list of {label =, value =, behind =
-- (optional, drawn lighter under the bar, e.g. raw bytes under stored),
-- class = (optional extra CSS class)}. opts: format (value -> text),
-- reference (a value marked with a dashed line, e.g. 100 %).
function report.bar_chart(rows, opts)
  opts = opts or {}
  local format = opts.format or num
  local max = opts.reference or 0
  for _, r in ipairs(rows) do max = math.max(max, r.value, r.behind or 0) end
  if max <= 0 then max = 1 end
  local area = BW - LABEL_W - VALUE_W
  local h = #rows * ROW_H + 8
  local out = { ('<svg class="bars" viewBox="0 0 %d %d" width="%d" height="%d" role="img">'):format(BW, h, BW, h) }
  for i, r in ipairs(rows) do
    local y = (i - 1) * ROW_H + 4
    local label = tostring(r.label)
    out[#out + 1] = ('<text class="label" x="%d" y="%d" text-anchor="end"><title>%s</title>%s</text>')
      :format(LABEL_W - 8, y + 15, esc(label), esc(shorten(label, 30)))
    if r.behind then
      out[#out + 1] = ('<rect class="behind" x="%d" y="%d" width="%s" height="%d"/>')
        :format(LABEL_W, y + 2, f2(r.behind / max * area), ROW_H - 6)
    end
    out[#out + 1] = ('<rect class="bar%s" x="%d" y="%d" width="%s" height="%d"><title>%s: %s</title></rect>')
      :format(r.class and " " .. r.class or "", LABEL_W, y + 2, f2(math.max(r.value / max * area, 1)),
              ROW_H - 6, esc(label), esc(format(r.value)))
    out[#out + 1] = ('<text class="value" x="%s" y="%d">%s</text>')
      :format(f2(LABEL_W + math.max(r.value, r.behind or 0) / max * area + 6), y + 15, esc(format(r.value)))
  end
  if opts.reference then
    local x = LABEL_W + opts.reference / max * area
    out[#out + 1] = ('<line class="reference" x1="%s" y1="0" x2="%s" y2="%d"/>'):format(f2(x), f2(x), h)
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------
-- Timeline: one <circle class="checkpoint"> per checkpoint
---------------------------------------------------------------------------

local function timeline(checkpoints)
  local t0, t1 = math.huge, -math.huge
  for _, c in ipairs(checkpoints) do
    t0, t1 = math.min(t0, c.created_at), math.max(t1, c.created_at)
  end
  t0, t1 = padded_time(t0, t1)
  local W, H, axis_y = LW, 124, 60
  local function sx(t) return ML + (t - t0) / (t1 - t0) * (W - ML - MR) end
  local out = { ('<svg class="timeline" viewBox="0 0 %d %d" width="%d" height="%d" role="img">'):format(W, H, W, H),
                ('<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>'):format(ML, axis_y, W - MR, axis_y) }
  time_ticks(out, t0, t1, sx, H - 6)
  -- label rows above and below the axis; a label goes in the first row
  -- where it does not overlap the previous one, or is left to the tooltip
  local rows, row_end = { axis_y - 26, axis_y - 12, axis_y + 22, axis_y + 36 }, {}
  for _, c in ipairs(checkpoints) do
    local x = sx(c.created_at)
    out[#out + 1] = ('<circle class="checkpoint" cx="%s" cy="%d" r="6"><title>%s\n%s UTC, %d pins</title></circle>')
      :format(f2(x), axis_y, esc(c.id), iso(c.created_at), c.pins)
    local label = shorten(c.system_version or c.id:sub(1, 8), 16)
    local half = 3.5 * (utf8.len(label) or #label) + 4
    for r, y in ipairs(rows) do
      if not row_end[r] or x - half > row_end[r] then
        row_end[r] = x + half
        out[#out + 1] = ('<text class="cplabel" x="%s" y="%d" text-anchor="middle">%s</text>')
          :format(f2(x), y, esc(label))
        break
      end
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------
-- Reading the store
---------------------------------------------------------------------------

-- Store failures come back as nil, message: raised here as a tagged table
-- and turned back into nil, message by collect().
local Failure = {}
local function must(v, err, ...)
  if v == nil and err ~= nil then error(setmetatable({ msg = tostring(err) }, Failure), 0) end
  return v, err, ...
end

-- Which metrics to draw: the caller's list, or every name the store
-- lists. A store without metric_names() cannot be asked for its names, so
-- it gets none, and the page says so.
local function metric_names(store, wanted)
  if wanted then return wanted, true end
  if store.metric_names then return must(store:metric_names()) or {}, true end
  return {}, false
end

local function collect_metrics(store, wanted)
  local names, listed = metric_names(store, wanted)
  local list = {}
  for _, name in ipairs(names) do
    list[#list + 1] = { name = name, points = must(store:metrics(name)) or {} }
  end
  return list, listed
end

local function count_conflicts(store, id, layer)
  local c = must(store:conflicts(id, layer))
  return c and #c or 0
end

-- One get per layer's latest version: sizes and parameter counts, not
-- the history.
local function collect_expert(store, id)
  local e = { id = id, config = must(store:get_config(id)), layers = {}, weights_parameters = 0,
              config_conflicts = count_conflicts(store, id) }
  for _, layer in ipairs(must(store:layers(id)) or {}) do
    local versions = must(store:weight_versions(id, layer)) or {}
    local w, b, info = must(store:get_weights(id, layer))
    if w then
      e.weights_parameters = e.weights_parameters + #w + #b
      e.layers[#e.layers + 1] = {
        layer = layer, versions = #versions, latest = info.version, codec = info.codec,
        raw_bytes = info.raw_bytes, stored_bytes = info.stored_bytes,
        conflicts = count_conflicts(store, id, layer),
      }
    end
  end
  local pc = type(e.config) == "table" and e.config.parameter_count
  e.parameters = math.type(pc) == "integer" and pc or e.weights_parameters
  return e
end

local function collect_checkpoints(store)
  local list = {}
  for _, id in ipairs(must(store:list_checkpoints()) or {}) do
    local cp = must(store:get_checkpoint(id))
    if cp and type(cp.created_at) == "number" then
      list[#list + 1] = { id = id, created_at = cp.created_at, pins = #(cp.pins or {}),
                          system_version = type(cp.system_version) == "string" and cp.system_version or nil }
    end
  end
  table.sort(list, function(a, b) return a.created_at < b.created_at end)
  return list
end

--- Reads what the report shows from an open store. opts: metrics (list of
-- metric names; default every name store:metric_names() lists),
-- node_stats (the table `synaptic serve --json` prints at exit).
-- Returns the data table, or nil, message on a store failure.
function report.collect(store, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'collect' (table expected)", 2) end
  local ok, data = pcall(function()
    local d = { path = store:path(), origin = store:origin(), storage = must(store:storage_stats()),
                node = opts.node_stats, experts = {}, generated_at = os.time() }
    d.metrics, d.metric_names_listed = collect_metrics(store, opts.metrics)
    for _, id in ipairs(must(store:list_experts()) or {}) do
      d.experts[#d.experts + 1] = collect_expert(store, id)
    end
    d.checkpoints = collect_checkpoints(store)
    return d
  end)
  if ok then return data end
  if getmetatable(data) == Failure then return nil, data.msg end
  error(data, 0)
end

---------------------------------------------------------------------------
-- The page
---------------------------------------------------------------------------

local CSS = [[
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2733;
       background: #f6f7f9; margin: 0; padding: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #5b6673; margin: 0 0 16px; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 18px; } .card span { color: #5b6673; font-size: 12px; }
figure.chart { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; margin: 10px 0;
               padding: 8px 12px; max-width: 924px; }
figcaption { font-weight: 600; margin-bottom: 4px; word-break: break-all; }
figcaption small { font-weight: 400; color: #5b6673; }
svg { display: block; max-width: 100%; height: auto; }
.grid { stroke: #e6e9ee; } .axis { stroke: #8a95a3; }
.tick, .value, .cplabel { font-size: 11px; fill: #5b6673; } .label { font-size: 12px; fill: #1d2733; }
.series { fill: none; stroke: #2f6fdf; stroke-width: 1.5; } .point { fill: #2f6fdf; }
.bar { fill: #2f6fdf; } .bar.warn { fill: #d9822b; } .behind { fill: #c9d8f5; }
.reference { stroke: #d9822b; stroke-dasharray: 4 3; }
.checkpoint { fill: #2a9d68; stroke: #fff; stroke-width: 2; }
.empty, .note { color: #5b6673; font-style: italic; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #dde2e8; padding: 4px 8px; text-align: left; }
.alive { color: #2a9d68; } .suspect { color: #d9822b; } .dead { color: #c0392b; }
]]

local function figure(kind, caption, svg)
  return ('<figure class="chart" data-chart="%s"><figcaption>%s</figcaption>\n%s\n</figure>'):format(kind, caption, svg)
end

local function empty(text) return '<p class="empty">' .. esc(text) .. "</p>" end

local function summary(d)
  local st, ncp, npoints = d.storage, #d.checkpoints, 0
  for _, m in ipairs(d.metrics) do npoints = npoints + #m.points end
  local cards = {
    { report.human_bytes(st.total_bytes), ("in %d files"):format(st.file_count) },
    { #d.experts, "experts" }, { st.weight_records, "weight records" },
    { ("%.1f %%"):format(100 * st.compression_ratio), "stored / raw weights" },
    { ncp, "checkpoints" }, { npoints, ("metric samples in %d metrics"):format(#d.metrics) },
  }
  local out = { '<div class="cards">' }
  for _, c in ipairs(cards) do
    out[#out + 1] = ("<div class=\"card\"><b>%s</b><span>%s</span></div>"):format(esc(c[1]), esc(c[2]))
  end
  out[#out + 1] = "</div>"
  return table.concat(out)
end

local function metrics_section(d, out)
  out[#out + 1] = "<h2>Metrics</h2>"
  if not d.metric_names_listed then
    out[#out + 1] = '<p class="note">This build of synaptic cannot list a store\'s metric names '
      .. "(store:metric_names() is missing): name the metrics to draw with --metric NAME.</p>"
  elseif #d.metrics == 0 then
    out[#out + 1] = empty("No metrics recorded.")
  end
  for _, m in ipairs(d.metrics) do
    local pts = m.points
    if #pts == 0 then
      out[#out + 1] = figure("metric-empty", esc(m.name), empty("No samples."))
    else
      local lo, hi = math.huge, -math.huge
      for _, p in ipairs(pts) do lo, hi = math.min(lo, p.value), math.max(hi, p.value) end
      local caption = ("%s <small>%d samples, min %s, max %s, last %s%s</small>"):format(
        esc(m.name), #pts, num(lo), num(hi), num(pts[#pts].value),
        #pts > report.MAX_MARKERS and ", drawn as a per-pixel min/max envelope" or "")
      out[#out + 1] = figure("metric", caption,
        report.line_chart(pts, ('data-metric="%s" data-samples="%d"'):format(esc(m.name), #pts)))
    end
  end
end

local function layer_rows(d, value_of)
  local rows = {}
  for _, e in ipairs(d.experts) do
    for _, l in ipairs(e.layers) do
      local r = value_of(e, l)
      if r then
        r.label = ("%s / layer %d"):format(e.id, l.layer)
        rows[#rows + 1] = r
      end
    end
  end
  return rows
end

local function experts_section(d, out)
  out[#out + 1] = "<h2>Experts</h2>"
  if #d.experts == 0 then out[#out + 1] = empty("No experts.") return end
  local rows = {}
  for _, e in ipairs(d.experts) do rows[#rows + 1] = { label = e.id, value = e.parameters } end
  out[#out + 1] = figure("parameters", "Parameters per expert <small>(config parameter_count, "
    .. "else counted from the latest weights)</small>", report.bar_chart(rows))
  rows = layer_rows(d, function(_, l) return { value = l.stored_bytes, behind = l.raw_bytes } end)
  if #rows == 0 then out[#out + 1] = empty("No weights stored.") return end
  out[#out + 1] = figure("stored-bytes", "Stored bytes per layer, latest version <small>(light: raw bytes)</small>",
    report.bar_chart(rows, { format = report.human_bytes }))
  rows = layer_rows(d, function(_, l) return { value = l.versions } end)
  out[#out + 1] = figure("versions", "Versions kept per layer", report.bar_chart(rows))
  rows = layer_rows(d, function(_, l)
    if l.raw_bytes > 0 then
      return { value = 100 * l.stored_bytes / l.raw_bytes, codec = l.codec,
               class = l.stored_bytes > l.raw_bytes and "warn" or nil }
    end
  end)
  for _, r in ipairs(rows) do r.label = r.label .. " (" .. tostring(r.codec) .. ")" end
  out[#out + 1] = figure("codec-ratio", "Codec ratio per layer: stored / raw <small>(dashed: 100 %)</small>",
    report.bar_chart(rows, { reference = 100, format = function(v) return ("%.1f %%"):format(v) end }))
end

local function checkpoints_section(d, out)
  out[#out + 1] = "<h2>Checkpoints</h2>"
  if #d.checkpoints == 0 then out[#out + 1] = empty("No checkpoints.") return end
  local c = d.checkpoints
  out[#out + 1] = figure("checkpoints", ("%d checkpoints <small>%s to %s UTC</small>")
    :format(#c, iso(c[1].created_at), iso(c[#c].created_at)), timeline(c))
end

local function conflicts_section(d, out)
  out[#out + 1] = "<h2>Conflicts</h2>"
  local rows = {}
  for _, e in ipairs(d.experts) do
    if e.config_conflicts > 0 then rows[#rows + 1] = { label = e.id .. " / config", value = e.config_conflicts } end
  end
  for _, r in ipairs(layer_rows(d, function(_, l) return l.conflicts > 0 and { value = l.conflicts } end)) do
    rows[#rows + 1] = r
  end
  if #rows == 0 then out[#out + 1] = empty("No concurrent versions kept: nothing was in conflict.") return end
  out[#out + 1] = figure("conflicts", "Concurrent versions kept <small>(store:conflicts)</small>",
    report.bar_chart(rows))
end

local COUNTERS = { "weights_sent", "weights_received", "configs_sent", "configs_received",
                   "checkpoints_sent", "checkpoints_received", "conflicts", "rejected", "sync_rounds" }

-- A cell of the peers table: strings and numbers as text; JSON null and
-- anything else as "-".
local function cell(v)
  if type(v) == "number" then return num(v) end
  if type(v) == "string" then return esc(v) end
  if type(v) == "boolean" then return tostring(v) end
  return "-"
end

local function peers_table(peers)
  local cols, seen = { "id", "endpoint", "state", "last_seen" }, {}
  for _, c in ipairs(cols) do seen[c] = true end
  for _, p in ipairs(peers) do
    local extra = {}
    for k, v in pairs(p) do
      if type(k) == "string" and not seen[k] and type(v) ~= "table" then extra[#extra + 1] = k; seen[k] = true end
    end
    table.sort(extra)
    for _, k in ipairs(extra) do cols[#cols + 1] = k end
  end
  local out = { "<table><tr>" }
  for _, c in ipairs(cols) do out[#out + 1] = "<th>" .. esc(c) .. "</th>" end
  out[#out + 1] = "</tr>"
  for _, p in ipairs(peers) do
    out[#out + 1] = "<tr>"
    for _, c in ipairs(cols) do
      local state = c == "state" and type(p[c]) == "string" and p[c]:match("^%a+$")
      out[#out + 1] = (state and '<td class="' .. state .. '">' or "<td>") .. cell(p[c]) .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</table>"
  return table.concat(out)
end

local function peers_section(d, out)
  local node = d.node
  if type(node) ~= "table" then return end
  out[#out + 1] = "<h2>Peers</h2>"
  out[#out + 1] = ('<p class="sub">node %s, %s</p>'):format(cell(node.node_id), cell(node.address))
  local stats = type(node.stats) == "table" and node.stats or {}
  local rows = {}
  for _, k in ipairs(COUNTERS) do
    if type(stats[k]) == "number" then rows[#rows + 1] = { label = k, value = stats[k] } end
  end
  if #rows > 0 then out[#out + 1] = figure("node-counters", "Sync counters", report.bar_chart(rows)) end
  rows = {}
  for _, k in ipairs { "bytes_sent", "bytes_received" } do
    if type(stats[k]) == "number" then rows[#rows + 1] = { label = k, value = stats[k] } end
  end
  if #rows > 0 then
    out[#out + 1] = figure("node-bytes", "Bytes each way", report.bar_chart(rows, { format = report.human_bytes }))
  end
  local peers = {}
  for _, p in ipairs(type(node.peers) == "table" and node.peers or {}) do
    if type(p) == "table" then peers[#peers + 1] = p end
  end
  out[#out + 1] = #peers > 0 and peers_table(peers) or empty("No peers.")
end

--- The HTML page for a table from collect(). opts: title.
function report.render(d, opts)
  opts = opts or {}
  local title = opts.title or ("synaptic report: " .. tostring(d.path))
  local out = {
    "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
    -- nothing on this page may reach the network, whatever a store string holds
    [[<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">]],
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>" .. esc(title) .. "</title>", "<style>" .. CSS .. "</style></head><body>",
    "<h1>" .. esc(title) .. "</h1>",
    ('<p class="sub">store %s &middot; origin %s &middot; generated %s UTC</p>')
      :format(esc(d.path), esc(d.origin), iso(d.generated_at)),
    summary(d),
  }
  metrics_section(d, out)
  experts_section(d, out)
  checkpoints_section(d, out)
  conflicts_section(d, out)
  peers_section(d, out)
  out[#out + 1] = "</body></html>\n"
  return table.concat(out, "\n")
end

--- collect() then render(): the page as a string, or nil, message.
function report.build(store, opts)
  local d, err = report.collect(store, opts)
  if not d then return nil, err end
  return report.render(d, opts)
end

return report
