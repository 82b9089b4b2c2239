-- Bad paths: open on a file, below a missing or unwritable path, an
-- empty directory: a clear error, and nothing on disk changed (split from
-- 12-bad_input_spec).
local synaptic = require "synaptic"
local helpers = require "helpers"
local read_file, write_file, listdir = helpers.read_file, helpers.write_file, helpers.listdir

local function good_config()
  return { expert_id = "coding", domain = "coding", parameter_count = 100,
           learning_rate = 0.01, architecture = { layers = { 4, 8 } } }
end

describe("bad input", function()
  teardown(function() helpers.cleanup() end)

  describe("paths", function()
    it("open on a regular file is nil and a message; the file is untouched", function()
      local file = helpers.tmpdir("file") .. "/plain"
      write_file(file, "not a database\n")
      local s, msg = synaptic.open(file)
      assert.is_nil(s)
      assert.matches("^cannot open store at '.*/plain': not a directory$", msg)
      assert.matches("plain", msg, 1, true)
      assert.equal("not a database\n", read_file(file))
      local r, msg2 = synaptic.open(file, { read_only = true })
      assert.is_nil(r)
      assert.matches("^cannot open store at '.*/plain': not a directory$", msg2)
    end)

    it("open read_only on a missing directory is nil and a message, creating nothing", function()
      local missing = helpers.tmpdir("missing") .. "/nope"
      local s, msg = synaptic.open(missing, { read_only = true })
      assert.is_nil(s)
      assert.matches("^cannot open store at '.*/nope': no such directory$", msg)
      assert.is_nil(io.open(missing .. "/CURRENT"))
      assert.equal(0, #listdir(missing:match("^(.*)/")))
    end)

    it("open below a path that cannot exist is nil and a message", function()
      local file = helpers.tmpdir("file2") .. "/plain"
      write_file(file, "x")
      local s, msg = synaptic.open(file .. "/db")
      assert.is_nil(s)
      assert.matches("^cannot open store at '.*/plain/db': Not a directory$", msg)
    end)

    it("a directory with files but no CURRENT is refused and left as it was", function()
      local dir = helpers.tmpdir("nocurrent")
      write_file(dir .. "/notes.txt", "precious")
      write_file(dir .. "/000123.sst", "also precious")
      local before = listdir(dir)
      local s, msg = synaptic.open(dir)
      assert.is_nil(s)
      assert.matches("holds files but no CURRENT: not a store, or a damaged one", msg, 1, true)
      assert.same(before, listdir(dir))
      assert.equal("precious", read_file(dir .. "/notes.txt"))
      assert.equal("also precious", read_file(dir .. "/000123.sst"))
      local r, msg2 = synaptic.open(dir, { read_only = true })
      assert.is_nil(r)
      assert.matches("holds files but no CURRENT: not a store, or a damaged one", msg2, 1, true)
      assert.same(before, listdir(dir))
    end)

    it("an empty directory becomes a new store", function()
      local dir = helpers.tmpdir("empty")
      local s = assert(synaptic.open(dir))
      assert.equal(1, s:put_weights("e", 0, { 1 }))
      s:close()
    end)
  end)

end)
