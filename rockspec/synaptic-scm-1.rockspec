rockspec_format = "3.0"
package = "synaptic"
version = "scm-1"
-- `luarocks make` builds the checkout it is run in; the url is where the
-- sources live for `luarocks install` and `luarocks pack`.
source = {
   url = "git+https://github.com/synaptic-mesh/synaptic.git",
}
description = {
   summary = "Persistent, synchronised memory for a mesh of neural micro-experts",
   detailed = [[
A Lua 5.4 module with a C core: RocksDB storage of versioned, compressed
float32 weights, configs, checkpoints and metrics, with integrity checks and
incremental backups.
]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.4",
   "argparse",
   "lua-cjson",
}
external_dependencies = {
   ROCKSDB = { header = "rocksdb/c.h", library = "rocksdb" },
   ZLIB = { header = "zlib.h", library = "z" },
   ZSTD = { header = "zstd.h", library = "zstd" },
   LIBDEFLATE = { header = "libdeflate.h", library = "deflate" },
   UUID = { header = "uuid/uuid.h", library = "uuid" },
   MSGPACK = { header = "msgpack.h", library = "msgpackc" },
   ZMQ = { header = "zmq.h", library = "zmq" },
   NATS = { header = "nats/nats.h", library = "nats" },
   SODIUM = { header = "sodium.h", library = "sodium" },
}
build = {
   type = "make",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      LUA_LIBDIR = "$(LUA_LIBDIR)",
      LUA = "$(LUA)",
      LIBS = "-L$(ROCKSDB_LIBDIR) -lrocksdb -L$(MSGPACK_LIBDIR) -lmsgpackc -L$(ZLIB_LIBDIR) -lz -L$(ZSTD_LIBDIR) -lzstd -L$(LIBDEFLATE_LIBDIR) -ldeflate -L$(UUID_LIBDIR) -luuid -L$(ZMQ_LIBDIR) -lzmq -L$(NATS_LIBDIR) -lnats -L$(SODIUM_LIBDIR) -lsodium -lm",
   },
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
   },
   build_target = "all",
   install_target = "install",
   copy_directories = { "docs", "examples" },
}
