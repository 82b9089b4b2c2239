--- Ways to persist one weights array per version, all behind one interface:
--   local h = method.open(dir)
--   h:put(floats) -> version        h:get(version) -> floats
--   h:reopen() (optional)           h:close()
--   h:stored_bytes(version) (optional: bytes the record takes)
-- Every get returns a synaptic.floats array, the object a caller would use.
local synaptic = require "synaptic"

local M = {}

local EXPERT, LAYER = "bench-expert", 0

-- ---- synaptic --------------------------------------------------------------

--- A synaptic store with the given open() options.
function M.synaptic(name, opts)
  return {
    name = name,
    opts = opts,
    reopenable = true,
    open = function(dir)
      local path = dir .. "/store"
      local h = { store = assert(synaptic.open(path, opts)) }
      function h:put(w)
        return assert(self.store:put_weights(EXPERT, LAYER, w))
      end
      function h:get(v)
        local w, _, info = self.store:get_weights(EXPERT, LAYER, v)
        assert(w, "get_weights: version " .. tostring(v) .. " not found")
        return w, info
      end
      function h:stored_bytes(v)
        local _, _, info = self.store:get_weights(EXPERT, LAYER, v)
        return info.stored_bytes, info.raw_bytes
      end
      function h:reopen()
        self.store:close()
        self.store = assert(synaptic.open(path, opts))
      end
      function h:close() self.store:close() end
      return h
    end,
  }
end

-- ---- plain files -------------------------------------------------------------

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

--- One file per version: raw little-endian float32 bytes.
function M.file()
  return {
    name = "plain file (raw bytes)",
    open = function(dir)
      local h = { n = 0 }
      function h:put(w)
        self.n = self.n + 1
        write_file(dir .. "/w" .. self.n .. ".bin", w:tobytes())
        return self.n
      end
      function h:get(v)
        return synaptic.floats(read_file(dir .. "/w" .. v .. ".bin"))
      end
      function h:stored_bytes(v) return file_size(dir .. "/w" .. v .. ".bin") end
      function h:close() end
      return h
    end,
  }
end

--- One file per version, compressed with a synaptic codec first: isolates
-- the codec's cost from the storage engine's.
function M.file_codec(codec)
  return {
    name = "plain file + " .. codec .. " codec",
    open = function(dir)
      local h = { n = 0, raw = {} }
      function h:put(w)
        self.n = self.n + 1
        self.raw[self.n] = #w * 4
        write_file(dir .. "/w" .. self.n .. ".z", synaptic.compress(codec, w))
        return self.n
      end
      function h:get(v)
        local s = read_file(dir .. "/w" .. v .. ".z")
        return synaptic.floats(synaptic.decompress(codec, s, self.raw[v]))
      end
      function h:stored_bytes(v) return file_size(dir .. "/w" .. v .. ".z") end
      function h:close() end
      return h
    end,
  }
end

--- The codec alone, in memory: put = synaptic.compress, get =
-- synaptic.decompress + synaptic.floats. Measured in the same group as the
-- stores so "where the time goes" compares like with like. Keeps the last
-- few outputs only (a ring), so memory stays small.
function M.codec_only(codec)
  local RING = 8
  return {
    name = codec .. " codec alone (in memory)",
    open = function()
      local h = { n = 0, ring = {}, raw = 0 }
      function h:put(w)
        self.n = self.n + 1
        self.raw = #w * 4
        self.ring[self.n % RING] = synaptic.compress(codec, w)
        return self.n
      end
      function h:get(v)
        local c = self.ring[v % RING] or self.ring[self.n % RING]
        return synaptic.floats(synaptic.decompress(codec, c, self.raw))
      end
      function h:stored_bytes(v) return #(self.ring[v % RING] or self.ring[self.n % RING]) end
      function h:close() self.ring = {} end
      return h
    end,
  }
end

-- ---- SQLite (lua-sql-sqlite3) --------------------------------------------------

-- luasql has no parameter binding and passes SQL as a C string, so a blob
-- holding NUL bytes can only travel as an X'..' hex literal. This is the
-- fastest pure-Lua hex encoder measured (gsub with a 256-entry table).
local HEX = {}
for i = 0, 255 do HEX[string.char(i)] = string.format("%02x", i) end
local function hex(s) return (s:gsub(".", HEX)) end
M.hex = hex

local function exec(conn, sql)
  local r, err = conn:execute(sql)
  assert(r, err)
  if type(r) == "userdata" then r:close() end
end

--- SQLite, WAL journal, synchronous=NORMAL (no fsync per commit: the same
-- durability class as RocksDB's WAL without sync), one autocommit INSERT per
-- version. Seconds spent hex-encoding accumulate in h.excluded so the
-- engine's own share can be reported too.
function M.sqlite()
  local ok, luasql = pcall(require, "luasql.sqlite3")
  if not ok then return nil, "lua-sql-sqlite3 not installed" end
  return {
    name = "SQLite blob (luasql, WAL)",
    reopenable = true,
    open = function(dir)
      local path = dir .. "/weights.db"
      local h = { n = 0, env = luasql.sqlite3(), excluded = 0 }
      local function connect()
        h.conn = assert(h.env:connect(path))
        exec(h.conn, "PRAGMA journal_mode=WAL")
        exec(h.conn, "PRAGMA synchronous=NORMAL")
        exec(h.conn, "CREATE TABLE IF NOT EXISTS weights (expert TEXT NOT NULL, " ..
          "layer INTEGER NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL, " ..
          "PRIMARY KEY (expert, layer, version))")
      end
      connect()
      function h:put(w)
        self.n = self.n + 1
        local t0 = synaptic.now()
        local lit = hex(w:tobytes())
        self.excluded = self.excluded + (synaptic.now() - t0)
        exec(self.conn, string.format(
          "INSERT INTO weights (expert, layer, version, data) VALUES ('%s', %d, %d, X'%s')",
          EXPERT, LAYER, self.n, lit))
        return self.n
      end
      function h:get(v)
        local cur = assert(self.conn:execute(string.format(
          "SELECT data FROM weights WHERE expert = '%s' AND layer = %d AND version = %d",
          EXPERT, LAYER, v)))
        local s = cur:fetch()
        cur:close()
        assert(s, "sqlite: version not found")
        return synaptic.floats(s)
      end
      function h:stored_bytes(v)
        local cur = assert(self.conn:execute(string.format(
          "SELECT length(data) FROM weights WHERE expert = '%s' AND layer = %d AND version = %d",
          EXPERT, LAYER, v)))
        local n = cur:fetch()
        cur:close()
        return tonumber(n)
      end
      function h:reopen()
        self.conn:close()
        connect()
      end
      function h:close()
        self.conn:close()
        self.env:close()
      end
      return h
    end,
  }
end

-- ---- JSON text (lua-cjson) ------------------------------------------------------

--- One JSON file per version: encode a:totable(), decode + synaptic.floats.
-- 9 significant digits round-trip any float32 exactly.
function M.cjson()
  local ok, cjson = pcall(require, "cjson")
  if not ok then return nil, "lua-cjson not installed" end
  local json = cjson.new()
  json.encode_number_precision(9)
  return {
    name = "JSON text file (lua-cjson)",
    slow = true,
    open = function(dir)
      local h = { n = 0 }
      function h:put(w)
        self.n = self.n + 1
        write_file(dir .. "/w" .. self.n .. ".json", json.encode(w:totable()))
        return self.n
      end
      function h:get(v)
        return synaptic.floats(json.decode(read_file(dir .. "/w" .. v .. ".json")))
      end
      function h:stored_bytes(v) return file_size(dir .. "/w" .. v .. ".json") end
      function h:close() end
      return h
    end,
  }
end

return M
