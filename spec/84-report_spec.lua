-- synaptic.report and `synaptic report`: the page's structure, counted
-- rather than eyeballed (make report-check renders it in Chromium): an
-- <svg> per chart, a <circle class="point"> per metric sample, nothing
-- that reaches the network, and every store string HTML-escaped.
local synaptic = require "synaptic"
local cjson = require "cjson"
local report = require "synaptic.report"
local helpers = require "helpers"
local C = require "cli_run"

local EVIL = "<b>&x"                    -- an expert id that is also markup
local EVIL_METRIC = "loss<i>\"q\""
local EVIL_VERSION = "<script>alert(1)</script>"
local SAMPLES = { [EVIL_METRIC] = 5, rt = 3 }

local function count(s, plain)
  local n, init = 0, 1
  while true do
    local i, j = s:find(plain, init, true)
    if not i then return n end
    n, init = n + 1, j + 1
  end
end

-- The <svg ...>...</svg> whose opening tag carries attr.
local function svg_with(html, attr)
  local i = html:find(attr, 1, true)
  assert(i, "no chart with " .. attr)
  local start = html:sub(1, i):match(".*()<svg")
  local stop = select(2, html:find("</svg>", i, true))
  return html:sub(start, stop)
end

local ALLOWED_TAGS = {}
for t in ("html head meta title style body h1 h2 p div b span figure figcaption small svg line "
          .. "text path circle rect table tr th td"):gmatch("%S+") do ALLOWED_TAGS[t] = true end

local function assert_self_contained(html)
  for _, bad in ipairs { "http://", "https://", "<script", "src=", "url(", "@import", "<link", "<iframe" } do
    assert.equal(0, count(html:lower(), bad), "the page holds " .. bad)
  end
  for tag in html:gmatch("<%/?([%w!]+)") do
    assert(tag == "!DOCTYPE" or ALLOWED_TAGS[tag], "unexpected element <" .. tag .. ">")
  end
  -- every & starts an entity: nothing from the store went in raw
  for amp in html:gmatch("&[^;%s]*;?") do
    assert(amp:match("^&%a+;$") or amp:match("^&#%d+;$"), "a bare & in the page: " .. amp)
  end
end

local function make_store(path)
  local s = assert(synaptic.open(path, { write_buffer_mb = 1, cache_mb = 1 }))
  for i, id in ipairs { EVIL, "plain" } do
    for layer = 1, 2 do
      for v = 1, layer do
        s:put_weights(id, layer, helpers.weights(64 * i, v + layer), helpers.weights(8, v), { shape = { 8, 8 * i } })
      end
    end
  end
  s:put_config { expert_id = EVIL, domain = EVIL, parameter_count = 1234, learning_rate = 0.1, architecture = { 8, 8 } }
  for name, n in pairs(SAMPLES) do
    for k = 1, n do s:record_metric(name, k * k / 3, 1000 + 60 * k) end
  end
  s:create_checkpoint { system_version = EVIL_VERSION }
  s:create_checkpoint { system_version = "v2" }
  return s
end

describe("report", function()
  local store, root

  setup(function()
    root = helpers.tmpdir("report")
    store = make_store(root .. "/db")
  end)

  teardown(function()
    store:close()
    helpers.cleanup()
  end)

  it("draws an <svg> per chart and a point per metric sample", function()
    local html = assert(report.build(store, { metrics = { EVIL_METRIC, "rt" } }))
    assert_self_contained(html)
    local figures = count(html, '<figure class="chart"')
    -- 2 metrics, parameters, stored bytes, versions, codec ratio, checkpoints;
    -- no conflicts and no node stats: no chart for either
    assert.equal(7, figures)
    assert.equal(figures, count(html, "<svg"))
    for name, n in pairs(SAMPLES) do
      local svg = svg_with(html, ('data-metric="%s"'):format(report.escape(name)))
      assert.equal(n, count(svg, '<circle class="point"'))
    end
    assert.equal(SAMPLES[EVIL_METRIC] + SAMPLES.rt, count(html, '<circle class="point"'))
    assert.equal(2, count(svg_with(html, 'class="timeline"'), '<circle class="checkpoint"'))
    -- a bar per expert, and per expert/layer in each layer chart
    assert.equal(2, count(html:match('data%-chart="parameters".-</svg>'), '<rect class="bar'))
    assert.equal(4, count(html:match('data%-chart="versions".-</svg>'), '<rect class="bar'))
    assert.matches("No concurrent versions kept", html)
  end)

  it("escapes every string that came from the store", function()
    local html = assert(report.build(store, { metrics = { EVIL_METRIC, "rt" } }))
    assert.equal(0, count(html, EVIL))
    assert.equal(0, count(html, EVIL_VERSION))
    assert.equal(0, count(html, EVIL_METRIC))
    assert.is_true(count(html, "&lt;b&gt;&amp;x") >= 5)
    assert.is_true(count(html, "loss&lt;i&gt;&quot;q&quot;") >= 2)
    assert.is_true(count(html, "&lt;script&gt;alert") >= 1)   -- the checkpoint label, shortened
    assert.equal("&lt;&amp;&gt;&quot;&#39;", report.escape("<&>\"'"))
  end)

  it("lists metric names itself when the store can, and says so when it cannot", function()
    local html = assert(report.build(store))
    if store.metric_names then
      assert.equal(SAMPLES[EVIL_METRIC] + SAMPLES.rt, count(html, '<circle class="point"'))
    else
      assert.matches("cannot list a store's metric names", html, 1, true)
      assert.equal(0, count(html, '<circle class="point"'))
    end
  end)

  it("charts conflicts and a node's peers", function()
    local a, b = store, assert(synaptic.open(root .. "/peer", { write_buffer_mb = 1, cache_mb = 1 }))
    local ea = synaptic.sync_engine(a, { node_id = "A" })
    local eb = synaptic.sync_engine(b, { node_id = "B" })
    ea:add_peer("B"); eb:add_peer("A")
    local function exchange(t0)
      for t = t0, t0 + 3 do
        ea:tick(t); eb:tick(t)
        for _ = 1, 10 do
          for _, m in ipairs(ea:outbox()) do eb:receive("A", m.bytes) end
          for _, m in ipairs(eb:outbox()) do ea:receive("B", m.bytes) end
        end
      end
    end
    exchange(1)
    a:put_weights("plain", 1, helpers.weights(128, 50), helpers.weights(8, 51))
    b:put_weights("plain", 1, helpers.weights(128, 52), helpers.weights(8, 53))
    exchange(10)
    assert.equal(1, #a:conflicts("plain", 1))
    local peers = ea:peers()
    peers[1].id = "<peer>&"
    local node = { node_id = "A<", address = cjson.null, stats = ea:stats(), peers = peers }
    ea:close(); eb:close(); b:close()

    local html = assert(report.build(store, { metrics = { "rt" }, node_stats = node }))
    assert_self_contained(html)
    assert.equal(1, count(html:match('data%-chart="conflicts".-</svg>'), '<rect class="bar'))
    assert.matches('data-chart="node-counters"', html, 1, true)
    assert.matches('data-chart="node-bytes"', html, 1, true)
    assert.matches("<td>&lt;peer&gt;&amp;</td>", html, 1, true)
    assert.equal(count(html, '<figure class="chart"'), count(html, "<svg"))
  end)

  it("draws a long series as an envelope without a marker per sample", function()
    local pts = {}
    for i = 1, report.MAX_MARKERS + 500 do pts[i] = { timestamp = i, value = math.sin(i / 50) } end
    local svg = report.line_chart(pts)
    assert.equal(0, count(svg, "<circle"))
    assert.equal(1, count(svg, '<path class="series"'))
    assert.is_true(#svg < 200000)
  end)

  it("is written by `synaptic report`, and refuses bad node stats", function()
    store:close()
    local out_file, stats_file = root .. "/r.html", root .. "/node.json"
    helpers.write_file(stats_file, '{"address":"tcp://127.0.0.1:1"}\n' ..
      cjson.encode { node_id = "n", stats = { bytes_sent = 10 }, peers = {} } .. "\n")
    local code, out, err = C.run("report", root .. "/db", "-o", out_file, "--node-stats", stats_file,
                                 "--metric", "rt")
    assert.equal(0, code, err)
    assert.matches("^wrote .*r%.html %(%d+ charts", out)
    local html = helpers.read_file(out_file)
    assert.equal(3, count(svg_with(html, 'data-metric="rt"'), '<circle class="point"'))
    assert.matches('data-chart="node-bytes"', html, 1, true)

    helpers.write_file(stats_file, "not json")
    C.assert_fails(1, "node%-stats", C.run("report", root .. "/db", "-o", out_file, "--node-stats", stats_file))
    C.assert_fails(2, "%-o", C.run("report", root .. "/db"))
    C.assert_fails(1, "no store", C.run("report", root .. "/nothing", "-o", out_file))
    store = assert(synaptic.open(root .. "/db"))
  end)
end)
