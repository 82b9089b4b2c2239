--- report: one self-contained HTML page of charts about a store
-- (synaptic.report), written under a temporary name and renamed, so a
-- failed run never leaves half a page behind.
local cjson = require "cjson"
local report = require "synaptic.report"
local arguments = require "synaptic.cli.arguments"
local common = require "synaptic.cli.common"
local output = require "synaptic.cli.output"

local fail = common.fail

local commands = {}

-- The JSON `synaptic serve --json` prints at exit; its last line when the
-- file holds the whole output (the address line comes first).
local function read_node_stats(path)
  local f, err = io.open(path, "rb")
  if not f then fail("--node-stats: %s", err) end
  local text = f:read("a")
  f:close()
  local last
  for line in text:gmatch("[^\n]+") do
    if line:match("%S") then last = line end
  end
  local ok, t = pcall(cjson.new().decode, last or "")
  if not ok or type(t) ~= "table" or type(t.stats) ~= "table" then
    fail("--node-stats: '%s' is not the JSON 'synaptic serve --json' prints at exit", path)
  end
  return t
end

-- Through a temporary file created exclusively under an unpredictable
-- name: a symlink planted at a guessable one would redirect the write.
local function write_atomically(path, text)
  local f, tmp = require("synaptic.core").temp_file(path)
  if not f then fail("cannot write '%s': %s", path, tmp) end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    fail("cannot write '%s': %s", path, werr or cerr)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    fail("cannot write '%s': %s", path, rerr)
  end
end

function commands.report(args)
  local node = args.node_stats and read_node_stats(args.node_stats) or nil
  local store <close> = common.open_store(args.store, { read_only = true })
  local metrics = #args.metric > 0 and args.metric or nil
  local html, err = report.build(store, { metrics = metrics, node_stats = node })
  if not html then fail("report: %s", output.one_line(err)) end
  write_atomically(args.output, html)
  local _, charts = html:gsub('<figure class="chart"', "")
  output.out("wrote %s (%d charts, %s)", args.output, charts, output.human(#html))
  return 0
end

local M = {}

function M.add_to_parser(p)
  local c = p:command("report", "Write one self-contained HTML page of charts about the store.")
  arguments.store_arg(c)
  c:option("-o --output", "HTML file to write."):argname("<file>"):count(1)
  c:option("--node-stats", "A node's stats: the JSON 'synaptic serve --json' prints at exit."):argname("<file>")
  c:option("--metric", "A metric to chart (repeatable; default: every metric the store lists)."):argname("<name>")
    :count("*")
end

function M.command(args)
  return commands[args.command](args)
end

return M
