-- Child process for 16-read_beside_writer_spec.lua:
--   lua5.4 spec/support/busy_writer.lua DBPATH SECONDS
-- writes weights (blob-sized and small), configs, state and metrics and
-- compacts every few rounds, until SECONDS pass or it is killed. Prints its
-- pid, then "ready" once the store has data, flushed.
local stat = assert(io.open("/proc/self/stat"))
io.stdout:write(("%d\n"):format(stat:read("n")))
stat:close()
io.stdout:flush()
local synaptic = require "synaptic"
local db, seconds = arg[1], tonumber(arg[2] or "20")
local s = assert(synaptic.open(db, { write_buffer_mb = 1, cache_mb = 1, max_weight_versions = 3 }))
local function values(n, seed)
  local t = {}
  for j = 1, n do t[j] = ((seed * 7919 + j) % 1000) / 1000 end
  return t
end
local round = 0
local deadline = os.time() + seconds
local said = false
while os.time() < deadline do
  round = round + 1
  for e = 1, 3 do
    assert(s:put_weights("e" .. e, round % 4, values(e == 1 and 3000 or 200, round)))
  end
  assert(s:put_config { expert_id = "e" .. (round % 3 + 1), domain = "d", parameter_count = round,
                        learning_rate = 0.01, architecture = { 4, 4 } })
  assert(s:put_state("round", round))
  assert(s:record_metric("loss", 1 / round))
  if round % 5 == 0 then assert(s:compact()) end
  if round == 10 and not said then
    io.stdout:write("ready\n")
    io.stdout:flush()
    said = true
  end
end
s:close()
