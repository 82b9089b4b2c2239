-- The numeric core of the runtime: synaptic.mlp, features, cue_scores.
-- Taken from synaptic.core so the spec does not depend on how the front end
-- (lua/synaptic/init.lua) chooses to re-export them.
local core = require "synaptic.core"

local function f32(x)
  return (string.unpack("<f", string.pack("<f", x)))
end

local function sigmoid(z)
  return 1 / (1 + math.exp(-z))
end

local function argmax(v)
  local best = 1
  for i = 2, #v do
    if v[i] > v[best] then best = i end
  end
  return best
end

local function weights_bytes(m)
  local parts = {}
  for l = 1, m:layer_count() do
    local w, b = m:get_layer(l)
    parts[#parts + 1] = w:tobytes() .. b:tobytes()
  end
  return table.concat(parts)
end

local EXPERT_INPUTS = { 64, 96, 128, 80, 48, 32 }

describe("synaptic.mlp", function()
  it("describes itself", function()
    local m = core.mlp({ 64, 128, 64, 32 }, 1)
    assert.equal("synaptic.mlp(64-128-64-32)", tostring(m))
    assert.same({ 64, 128, 64, 32 }, m:sizes())
    assert.equal(3, m:layer_count())
    assert.equal(64 * 128 + 128 + 128 * 64 + 64 + 64 * 32 + 32, m:parameter_count())
    local out, inp = m:layer_shape(1)
    assert.equal(128, out)
    assert.equal(64, inp)
  end)

  it("initialises from the seed: same seed same weights, another seed other weights", function()
    local a = core.mlp({ 16, 32, 8 }, 7)
    local b = core.mlp({ 16, 32, 8 }, 7)
    local c = core.mlp({ 16, 32, 8 }, 8)
    assert.equal(weights_bytes(a), weights_bytes(b))
    assert.not_equal(weights_bytes(a), weights_bytes(c))
    local x = core.features("same seed", 16)
    assert.is_true(a:forward(x) == b:forward(x))
  end)

  it("draws Xavier-uniform weights and zero biases", function()
    local m = core.mlp({ 64, 128, 10 }, 3)
    for l, shape in ipairs({ { 128, 64 }, { 10, 128 } }) do
      local w, b = m:get_layer(l)
      local out, inp = shape[1], shape[2]
      assert.equal(out * inp, #w)
      assert.equal(out, #b)
      local limit = math.sqrt(6 / (inp + out))
      local sum, max = 0, 0
      for i = 1, #w do
        sum = sum + w[i]
        max = math.max(max, math.abs(w[i]))
      end
      assert.is_true(max <= limit)
      assert.is_true(max > 0.9 * limit)   -- the whole range is used
      assert.is_true(math.abs(sum / #w) < 0.05 * limit)
      for i = 1, #b do assert.equal(0, b[i]) end
    end
  end)

  it("computes a forward pass by hand on a 2-3-1 net", function()
    local m = core.mlp({ 2, 3, 1 }, 1)
    local w1 = { 0.5, -0.25, 1.0, 0.75, -1.5, 0.125 }   -- [3][2]
    local b1 = { 0.1, -0.2, 0.3 }
    local w2 = { 0.6, -0.4, 0.9 }                         -- [1][3]
    local b2 = { -0.05 }
    m:set_layer(1, w1, b1)
    m:set_layer(2, w2, b2)
    local x = { 0.3, -0.7 }
    local h = {}
    for o = 1, 3 do
      h[o] = sigmoid(f32(w1[2 * o - 1]) * f32(x[1]) + f32(w1[2 * o]) * f32(x[2]) + f32(b1[o]))
    end
    local y = f32(b2[1])
    for i = 1, 3 do y = y + f32(w2[i]) * h[i] end
    local got = m:forward(x)
    assert.equal(1, #got)
    assert.near(y, got[1], 1e-6)
    -- floats input and a reused output array give the same answer
    local out = core.floats(1)
    assert.equal(out, m:forward(core.floats(x), out))
    assert.near(y, out[1], 1e-6)
  end)

  it("steps along the true gradient (checked by central differences)", function()
    local x = { 0.3, -0.8, 0.5 }
    for _, case in ipairs({ { "mse", { 0.25, -0.5 } }, { "softmax_ce", 2 }, { "softmax_ce", { 0.3, 0.7 } } }) do
      local loss_name, target = case[1], case[2]
      local m = core.mlp({ 3, 4, 5, 2 }, 17)
      local function loss_of(net)
        local y = net:forward(x)
        if loss_name == "mse" then
          return 0.5 * ((y[1] - target[1]) ^ 2 + (y[2] - target[2]) ^ 2) / 2
        end
        local p = net:softmax(y)
        if type(target) == "number" then return -math.log(p[target]) end
        return -(target[1] * math.log(p[1]) + target[2] * math.log(p[2]))
      end
      -- the analytic gradient, read back from one SGD step with lr = 1
      local stepped = core.mlp({ 3, 4, 5, 2 }, 17)
      assert.near(loss_of(m), stepped:train(x, target, 1, loss_name), 1e-5)
      for l = 1, 3 do
        local w, b = m:get_layer(l)
        local w2, b2 = stepped:get_layer(l)
        for _, which in ipairs({ { w, w2, 1 }, { w, w2, #w }, { b, b2, 1 } }) do
          local arr, after, i = which[1], which[2], which[3]
          local grad = arr[i] - after[i]
          local orig, eps = arr[i], 1e-2
          arr[i] = orig + eps
          m:set_layer(l, w, b)
          local up = loss_of(m)
          arr[i] = orig - eps
          m:set_layer(l, w, b)
          local down = loss_of(m)
          arr[i] = orig
          m:set_layer(l, w, b)
          assert.near((up - down) / (2 * eps), grad, 2e-5, loss_name .. " layer " .. l)
        end
      end
    end
  end)

  it("lowers the mse loss over 100 steps on a small regression", function()
    local m = core.mlp({ 2, 8, 1 }, 11)
    local data = {
      { { 0, 0 }, { 0.1 } }, { { 0, 1 }, { 0.7 } }, { { 1, 0 }, { 0.4 } }, { { 1, 1 }, { 0.9 } },
    }
    local function epoch()
      local total = 0
      for _, d in ipairs(data) do total = total + m:train(d[1], d[2], 0.5) end
      return total / #data
    end
    local first = epoch()
    local last
    for _ = 1, 99 do last = epoch() end
    assert.is_true(last < first * 0.25, ("loss %g -> %g"):format(first, last))
    -- the loss returned is the one before the update: 0.5 * sum (y-t)^2 / n
    local y = m:forward({ 1, 1 })[1]
    assert.near(0.5 * (y - 0.9) ^ 2, m:train({ 1, 1 }, { 0.9 }, 0.01), 1e-6)
  end)

  it("learns a class with softmax cross-entropy", function()
    local m = core.mlp({ 12, 16, 6 }, 5)
    local x = core.features("translate this sentence into French", 12)
    local before = m:train(x, 3, 0.5, "softmax_ce")
    local p = m:softmax(m:forward(x))
    local loss
    for _ = 1, 60 do loss = m:train(x, 3, 0.5, "softmax_ce") end
    assert.is_true(loss < before)
    assert.equal(3, argmax(m:forward(x)))
    -- the loss is -log softmax(y)[class]
    p = m:softmax(m:forward(x))
    assert.near(-math.log(p[3]), m:train(x, 3, 1e-6, "softmax_ce"), 1e-4)
  end)

  it("learns a target distribution with softmax cross-entropy", function()
    local m = core.mlp({ 4, 8, 3 }, 9)
    local x = { 0.2, -0.1, 0.5, 0.3 }
    local t = { 0.1, 0.2, 0.7 }
    local first = m:train(x, t, 0.5, "softmax_ce")
    for _ = 1, 200 do m:train(x, t, 0.5, "softmax_ce") end
    local p = m:softmax(m:forward(x))
    for i = 1, 3 do assert.near(t[i], p[i], 0.02) end
    assert.is_true(m:train(x, t, 0.5, "softmax_ce") < first)
  end)

  it("has a softmax helper that sums to one", function()
    local m = core.mlp({ 1, 1 }, 0)
    local p = m:softmax({ 1000, 1001, 999 })   -- stable for large values
    local sum = 0
    for i = 1, 3 do sum = sum + p[i] end
    assert.near(1, sum, 1e-6)
    assert.is_true(p[2] > p[1] and p[1] > p[3])
  end)

  it("round-trips layers through get_layer and set_layer, by copy", function()
    local a = core.mlp({ 8, 5, 3 }, 21)
    local b = core.mlp({ 8, 5, 3 }, 22)
    for l = 1, 2 do b:set_layer(l, a:get_layer(l)) end
    assert.equal(weights_bytes(a), weights_bytes(b))
    local x = core.features("round trip", 8)
    assert.is_true(a:forward(x) == b:forward(x))
    local w = a:get_layer(1)
    local before = weights_bytes(a)
    w[1] = 42
    assert.equal(before, weights_bytes(a))
  end)

  it("tracks which layers changed since they were marked clean", function()
    local m = core.mlp({ 4, 6, 5, 2 }, 1)
    assert.same({ 1, 2, 3 }, m:dirty_layers())   -- nothing saved yet
    assert.equal(m, m:mark_clean())
    assert.same({}, m:dirty_layers())
    local w, b = m:get_layer(2)
    m:set_layer(2, w, b)
    assert.same({ 2 }, m:dirty_layers())
    m:forward({ 1, 2, 3, 4 })
    assert.same({ 2 }, m:dirty_layers())         -- forward changes nothing
    m:mark_clean(2)
    assert.same({}, m:dirty_layers())
    m:train({ 1, 2, 3, 4 }, { 0, 1 }, 0.1)
    assert.same({ 1, 2, 3 }, m:dirty_layers())
    m:mark_clean(1)
    assert.same({ 2, 3 }, m:dirty_layers())
  end)

  it("refuses bad construction arguments", function()
    assert.error_matches(function() core.mlp({ 4 }, 1) end, "1 layer sizes %(need 2 to 8%)")
    assert.error_matches(function() core.mlp({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 1) end, "9 layer sizes")
    assert.error_matches(function() core.mlp({ 4, 0 }, 1) end, "layer size 2 is 0 %(need 1 to 4096%)")
    assert.error_matches(function() core.mlp({ 4, 4097 }, 1) end, "layer size 2 is 4097")
    assert.error_matches(function() core.mlp({ 4, 2.5 }, 1) end, "layer size 2 is not an integer")
    assert.error_matches(function() core.mlp({ 4, "x" }, 1) end, "layer size 2 is not an integer")
    assert.error_matches(function() core.mlp({ 4, 2 }) end, "number expected")
    assert.error_matches(function() core.mlp("4-2", 1) end, "table expected")
  end)

  it("refuses bad forward and train arguments without changing the net", function()
    local m = core.mlp({ 3, 4, 2 }, 1)
    local before = weights_bytes(m)
    local x = { 0.1, 0.2, 0.3 }
    assert.has_error(function() m:forward({ 1, 2 }) end, "mlp:forward: input has 2 values, expected 3")
    assert.has_error(function() m:forward({ 1, 0 / 0, 3 }) end, "mlp:forward: input value 2 is not finite")
    assert.has_error(function() m:forward({ 1, math.huge, 3 }) end, "mlp:forward: input value 2 is not finite")
    assert.error_matches(function() m:forward(x, core.floats(3)) end, "out has 3 values, the output layer 2")
    assert.error_matches(function() m:forward("abc") end, "floats or table of numbers expected")
    assert.has_error(function() m:train({ 1, 0 / 0, 3 }, { 0, 1 }, 0.1) end, "mlp:train: input value 2 is not finite")
    assert.has_error(function() m:train(x, { 0, 1, 2 }, 0.1) end, "mlp:train: target has 3 values, expected 2")
    assert.has_error(function() m:train(x, { 0, -math.huge }, 0.1) end, "mlp:train: target value 2 is not finite")
    for _, lr in ipairs({ 0, -0.1, 0 / 0, math.huge, 1e-60 }) do
      assert.error_matches(function() m:train(x, { 0, 1 }, lr) end, "learning rate must be finite and > 0")
    end
    assert.error_matches(function() m:train(x, 1, 0.1) end, "mse needs a target of output values, not a class index")
    assert.error_matches(function() m:train(x, 3, 0.1, "softmax_ce") end, "class 3 out of range %(1..2%)")
    assert.error_matches(function() m:train(x, 0, 0.1, "softmax_ce") end, "class 0 out of range")
    assert.error_matches(function() m:train(x, 1.5, 0.1, "softmax_ce") end, "class index must be an integer")
    assert.error_matches(function() m:train(x, { 0, 1 }, 0.1, "hinge") end, "invalid option 'hinge'")
    assert.has_error(function() m:train(x, { 0.5, -0.5 }, 0.1, "softmax_ce") end,
      "mlp:train: target value 2 is negative")
    assert.has_error(function() m:train(x, { 0, 0 }, 0.1, "softmax_ce") end,
      "mlp:train: target distribution sums to 0")
    assert.equal(before, weights_bytes(m))
  end)

  it("refuses a diverging step before touching any weight", function()
    local m = core.mlp({ 3, 4, 2 }, 1)
    m:mark_clean()
    local before = weights_bytes(m)
    assert.error_matches(function() m:train({ 1e20, 1e20, 1e20 }, { 0, 1 }, 1e35) end,
      "^mlp:train: update of layer %d too large")
    assert.equal(before, weights_bytes(m))
    assert.same({}, m:dirty_layers())
  end)

  it("refuses bad layers in get_layer and set_layer, keeping the old values", function()
    local m = core.mlp({ 3, 2 }, 1)
    local w, b = m:get_layer(1)
    local before = weights_bytes(m)
    assert.error_matches(function() m:get_layer(0) end, "layer 0 out of range %(1..1%)")
    assert.error_matches(function() m:get_layer(2) end, "layer 2 out of range %(1..1%)")
    assert.error_matches(function() m:set_layer(2, w, b) end, "layer 2 out of range")
    assert.has_error(function() m:set_layer(1, { 1, 2, 3 }, b) end,
      "mlp:set_layer: layer 1 needs 6 weights (2 x 3), got 3")
    assert.has_error(function() m:set_layer(1, w, { 1 }) end, "mlp:set_layer: layer 1 needs 2 biases, got 1")
    assert.has_error(function() m:set_layer(1, { 1, 2, 3, 4, 0 / 0, 6 }, b) end, "mlp:set_layer: weight 5 is not finite")
    assert.has_error(function() m:set_layer(1, w, { 1, -math.huge }) end, "mlp:set_layer: bias 2 is not finite")
    assert.has_error(function() m:set_layer(1, { 1, 2, "x", 4, 5, 6 }, b) end, "bad argument #2 to 'set_layer' (element 3 is a string, not a number)")
    assert.equal(before, weights_bytes(m))
  end)
end)

describe("synaptic.features", function()
  local text = "Why does this function fail? Because 3 + 4 = 8, then explain."

  it("gives exactly n values for every expert's input size, deterministically", function()
    for _, n in ipairs(EXPERT_INPUTS) do
      local a = core.features(text, n)
      assert.equal(n, #a)
      assert.is_true(a == core.features(text, n))
      for i = 1, n do
        assert.is_true(a[i] == a[i] and math.abs(a[i]) <= 1, "finite and bounded")
      end
    end
    assert.equal(5, #core.features(text, 5))   -- smaller than the cue block
  end)

  it("gives the same bits across runs (a pinned digest)", function()
    local f = core.features("The quick brown fox: 2 + 2 = 4?", 32)
    -- cue block values are exact fractions; pin a few of them
    assert.equal(0, f[1])                 -- no reasoning words
    assert.equal(f32(3 / 4), f[5])        -- three numbers
    assert.equal(f32(2 / 3), f[6])        -- two operators
    assert.equal(0.5, f[11])              -- one question mark
  end)

  it("normalises the hashed n-gram block to unit length", function()
    for _, n in ipairs(EXPERT_INPUTS) do
      local f = core.features(text, n)
      local sq = 0
      for i = 13, n do sq = sq + f[i] ^ 2 end
      assert.near(1, sq, 1e-5)
    end
    local empty = core.features("", 32)
    for i = 1, 32 do assert.equal(0, empty[i]) end
  end)

  it("distinguishes texts and ignores case and spacing", function()
    assert.is_false(core.features("sort a list in python", 64) == core.features("translate to german", 64))
    assert.is_true(core.features("Hello World", 64) == core.features("hello world", 64))
    local spaced, plain = core.features("hello \t\n  world", 64), core.features("hello world", 64)
    for i = 13, 64 do assert.equal(plain[i], spaced[i]) end
  end)

  it("lights the cue slots for their keywords", function()
    local zero = core.features("plain text here", 32)
    -- slot 1 reasoning words, 2 coding words, 3 code symbols, 4 language
    -- words, 5 numbers, 6 operators, 7 tool words, 8 context words
    assert.equal(0, zero[1])
    assert.equal(0.5, core.features("it broke because", 32)[1])
    assert.equal(0.5, core.features("a function here", 32)[2])
    assert.equal(f32(2 / 3), core.features("x { y }", 32)[3])
    assert.equal(0.5, core.features("what grammar", 32)[4])
    assert.equal(f32(3 / 4), core.features("1 and 22 and 333", 32)[5])
    assert.equal(0.5, core.features("a ^ b", 32)[6])
    assert.equal(0.5, core.features("run it", 32)[7])
    assert.equal(0.5, core.features("remember me", 32)[8])
    for i = 1, 8 do assert.equal(0, zero[i]) end
    -- length, sentences and word count grow with the text
    local short, long = core.features("One.", 32), core.features("One. Two! Three? Four five six.", 32)
    for _, slot in ipairs({ 9, 10, 12 }) do assert.is_true(long[slot] > short[slot]) end
  end)

  it("refuses bad arguments", function()
    assert.error_matches(function() core.features("x", 0) end, "size 0 out of range %(1..4096%)")
    assert.error_matches(function() core.features("x", 4097) end, "size 4097 out of range")
    assert.error_matches(function() core.features("x", 1.5) end, "number has no integer representation")
    assert.error_matches(function() core.features({}, 8) end, "string expected")
  end)
end)

describe("synaptic.cue_scores", function()
  it("scores the six domains from keyword hits", function()
    local s = core.cue_scores("Why does this function fail because of 3+4? Explain. Then run the tool.")
    assert.same({ reasoning = 4, coding = 1, language = 0, mathematics = 3, tool_use = 2, context = 2 }, s)
  end)

  it("matches whole words for short keywords and stems for long ones", function()
    local s = core.cue_scores("diff the undefined reasoning, debugging and programming languages")
    assert.equal(1, s.reasoning)     -- "reasoning", not the "if" in "diff"
    assert.equal(2, s.coding)        -- "debugging", "programming"; not "def" in "undefined"
    assert.equal(1, s.language)
    assert.same({ reasoning = 0, coding = 0, language = 0, mathematics = 0, tool_use = 0, context = 0 },
      core.cue_scores(""))
  end)

  it("counts numbers once and hyphenated words not at all", function()
    local s = core.cue_scores("a well-known value 3.14 and/or 1,000")
    assert.equal(2, s.mathematics)
  end)

  it("refuses a non-string", function()
    assert.error_matches(function() core.cue_scores(nil) end, "string expected")
  end)
end)
