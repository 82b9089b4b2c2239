# synaptic — build, test, bench, install.
# Variable names follow LuaRocks so `luarocks make` and a plain `make` agree;
# every one can be overridden on the command line.

LUA         ?= lua5.4
LUA_VERSION ?= 5.4
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
LUA_LIBDIR  ?= /usr/lib/x86_64-linux-gnu
PREFIX      ?= /usr/local
INST_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
INST_LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
INST_BINDIR ?= $(PREFIX)/bin

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    ?= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS_ALL = -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
             $(WARN) $(CFLAGS) -I$(LUA_INCDIR) -Icsrc
LIBFLAG ?= -shared
LIBS    ?= -lrocksdb -lmsgpackc -lz -lzstd -ldeflate -luuid -lzmq -lnats -lsodium -lm

BUILD   ?= build
SRCS    := $(wildcard csrc/*/*.c)
OBJS    := $(SRCS:csrc/%.c=$(BUILD)/obj/%.o)
CORE_SO := $(BUILD)/synaptic/core.so
CORE_SRCS := $(filter-out csrc/lua/%,$(SRCS))

# Debian packages a fresh machine needs (README "Dependencies").
DEB_PACKAGES ?= lua5.4 liblua5.4-dev librocksdb-dev zlib1g-dev libzstd-dev libdeflate-dev uuid-dev \
                libmsgpack-dev libzmq3-dev libnats-dev libsodium-dev nats-server lua-busted lua-argparse lua-cjson \
                lua-sql-sqlite3 pkg-config luarocks
DEB_CHECK_PACKAGES ?= clang libclang-rt-14-dev valgrind chromium python3

LUA_ENV = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua;;' LUA_CPATH='$(BUILD)/?.so;;' SYNAPTIC_TEST_HOOKS=1
BUSTED  ?= $(LUA) /usr/bin/busted

.PHONY: report-check check-codec-test check-kinds-test check-merge-test valgrind-check all deps deps-check test demo bench install clean fuzz fuzz-compress rockcheck asan-test check-codec fuzz-message

all: $(CORE_SO)

$(BUILD)/obj/%.o: csrc/%.c $(wildcard csrc/*/*.h) | $(BUILD)/obj
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/obj:
	mkdir -p $(BUILD)/obj $(BUILD)/synaptic

$(CORE_SO): $(OBJS)
	$(CC) $(LIBFLAG) -o $@ $(OBJS) $(LDFLAGS) $(LIBS)

# Installs what is missing when root; otherwise says the one line to run.
deps:
	@missing=""; for p in $(DEB_PACKAGES) $(EXTRA_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "deps: missing packages; run:"; echo "  sudo apt-get install -y$$missing"; exit 1; \
	fi

deps-check:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(DEB_CHECK_PACKAGES)"

# Installs nothing: run `make deps` first on a fresh machine (.ci/run does).
# The specs run in TEST_SHARDS busted processes side by side (one per core,
# at most two: the specs that poll real sockets expect a core to themselves;
# spec/support/shards.sh prints each and one summed summary line);
# TEST_SHARDS=1 runs them in one.
TEST_SHARDS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 2 ] && n=2; echo $$n)
test: all check-codec-test check-kinds-test check-merge-test
	$(LUA_ENV) SHARDS=$(TEST_SHARDS) spec/support/shards.sh $(BUSTED) \
	  --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua' --cpath='$(BUILD)/?.so'

demo: deps all
	rm -rf $(BUILD)/demo && mkdir -p $(BUILD)/demo
	cd $(BUILD)/demo && LUA_PATH='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;' \
	  LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;' $(LUA) $(CURDIR)/examples/persistence_demo.lua

# raw RocksDB from C with the store's options: the baseline of
# bench/engine_bench.lua
$(BUILD)/raw_rocksdb: bench/raw_rocksdb.c | $(BUILD)/obj
	$(CC) -O2 -std=c11 $(WARN) $< -o $@ -lrocksdb

# a loopback TCP connection from C: the floor under bench/sync_bench.lua's
# node-to-node rows
$(BUILD)/raw_tcp: bench/raw_tcp.c | $(BUILD)/obj
	$(CC) -O2 -std=c11 $(WARN) $< -o $@

bench: deps all $(BUILD)/raw_rocksdb $(BUILD)/crc_files $(BUILD)/raw_tcp
	$(LUA_ENV) RAW_ROCKSDB=$(BUILD)/raw_rocksdb $(LUA) bench/engine_bench.lua
	$(LUA_ENV) $(LUA) bench/bench.lua
	$(LUA_ENV) $(LUA) bench/runtime_bench.lua
	$(LUA_ENV) RAW_TCP=$(BUILD)/raw_tcp $(LUA) bench/sync_bench.lua
	$(LUA_ENV) $(LUA) bench/mesh_bench.lua
	$(LUA_ENV) $(LUA) bench/learning_bench.lua
	$(LUA_ENV) $(LUA) bench/disk_bench.lua
	$(LUA_ENV) CRC_FILES=$(BUILD)/crc_files $(LUA) bench/growth_bench.lua
	$(LUA_ENV) $(LUA) bench/history_bench.lua
	$(LUA_ENV) $(LUA) bench/join_bench.lua
	$(LUA_ENV) $(LUA) bench/poll_bench.lua
	$(LUA_ENV) $(LUA) bench/soak_bench.lua

# growth_bench's verify baseline: read and CRC32 every file of a store
$(BUILD)/crc_files: bench/crc_files.c | $(BUILD)/obj
	$(CC) -O2 $(WARN) -o $@ $< -lz

# The suite again with AddressSanitizer + UndefinedBehaviorSanitizer, leaks
# included (LeakSanitizer at exit; spec/support/lsan.supp lists the only
# leaks forgiven, all in third-party programs). ASAN_SPECS runs a subset.
# LD_PRELOAD: the interpreter itself is not instrumented, so the ASan runtime
# must be loaded first.
ASAN_SPECS ?= spec
asan-test: deps-check
	$(MAKE) BUILD=build-asan CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 SYNAPTIC_TEST_HOOKS=1 \
	  LD_PRELOAD="$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
	  LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua;;' LUA_CPATH='build-asan/?.so;;' \
	  $(BUSTED) --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua' --cpath='build-asan/?.so' $(ASAN_SPECS)

FUZZ_SECONDS ?= 30
FUZZ_CC     ?= clang
FUZZ_FLAGS   = -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_POSIX_C_SOURCE=200809L -Icsrc
BASE_SRCS    = $(wildcard csrc/base/*.c)
COMPRESS_SRCS = $(addprefix csrc/codec/,sn_compress.c sn_lanes.c sn_deflate.c sn_shuffle.c) \
                csrc/base/sn_err.c
CODEC_SRCS   = $(wildcard csrc/codec/*.c) $(BASE_SRCS)

# The record decoder against arbitrary bytes, seeded with one valid record
# of each type and codec.
fuzz: deps-check
	mkdir -p $(BUILD)/fuzz/corpus-record $(BUILD)/fuzz/seeds
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -Icsrc fuzz/make_seeds.c $(CODEC_SRCS) \
	  -o $(BUILD)/fuzz/make_seeds -lmsgpackc -lz -lzstd -ldeflate -lm
	$(BUILD)/fuzz/make_seeds $(BUILD)/fuzz/seeds
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_record.c $(CODEC_SRCS) -o $(BUILD)/fuzz/fuzz_record -lmsgpackc -lz -lzstd -ldeflate -lm
	$(BUILD)/fuzz/fuzz_record -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	  $(BUILD)/fuzz/corpus-record $(BUILD)/fuzz/seeds

# The P2P message decoder against arbitrary bytes, seeded with real messages
# of every kind written by two engines (fuzz/message_seeds.lua).
MESSAGE_FUZZ_SRCS = $(CODEC_SRCS) $(wildcard csrc/merge/*.c csrc/store/*.c csrc/sync/*.c) csrc/nats/sn_seal.c
fuzz-message: deps-check all
	mkdir -p $(BUILD)/fuzz/corpus-message $(BUILD)/fuzz/seeds-message
	$(LUA_ENV) $(LUA) fuzz/message_seeds.lua $(BUILD)/fuzz/seeds-message $(BUILD)/fuzz/seed-stores
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_message.c $(MESSAGE_FUZZ_SRCS) -o $(BUILD)/fuzz/fuzz_message \
	  -lrocksdb -lmsgpackc -lz -lzstd -ldeflate -luuid -lsodium -lm
	$(BUILD)/fuzz/fuzz_message -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	  $(BUILD)/fuzz/corpus-message $(BUILD)/fuzz/seeds-message

fuzz-compress: deps-check
	mkdir -p $(BUILD)/fuzz/corpus-compress
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_compress.c $(COMPRESS_SRCS) \
	  -o $(BUILD)/fuzz/fuzz_compress -lz -lzstd
	$(BUILD)/fuzz/fuzz_compress -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -rss_limit_mb=2048 \
	  $(BUILD)/fuzz/corpus-compress

# The codecs' own C test: exact round trips, rejection of damaged streams,
# and a ratio/speed table per data kind.
$(BUILD)/test_compress: spec/c/test_compress.c spec/c/codec_data.h $(COMPRESS_SRCS) \
                        csrc/codec/sn_compress.h csrc/codec/sn_compress_int.h
	mkdir -p $(BUILD)
	$(CC) -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Icsrc spec/c/test_compress.c $(COMPRESS_SRCS) \
	  -o $@ -lz -lzstd -lm

check-codec: $(BUILD)/test_compress
	$(BUILD)/test_compress

# The tests only, without the throughput table: part of `make test`.
check-codec-test: $(BUILD)/test_compress
	$(BUILD)/test_compress test

# The record kinds table and the record check, linked against the core's
# own objects (no Lua): keys and records built in memory, no store opened.
CORE_OBJS = $(filter-out $(BUILD)/obj/lua/%,$(OBJS))
$(BUILD)/test_kinds: spec/c/test_kinds.c $(CORE_OBJS)
	$(CC) $(CFLAGS_ALL) spec/c/test_kinds.c $(CORE_OBJS) -o $@ $(LDFLAGS) $(LIBS)

check-kinds-test: $(BUILD)/test_kinds
	$(BUILD)/test_kinds

# The C tests under valgrind's memcheck (luv's CI does the same): a leak,
# an invalid read or write, or a use of uninitialised memory fails.
VALGRIND ?= valgrind --leak-check=full --error-exitcode=1 -q
valgrind-check: deps-check $(BUILD)/test_compress $(BUILD)/test_kinds $(BUILD)/test_merge
	$(VALGRIND) $(BUILD)/test_compress test
	$(VALGRIND) $(BUILD)/test_kinds
	$(VALGRIND) $(BUILD)/test_merge

# The merge rules' C test: built from csrc/merge/ and csrc/base/ alone, so
# it proves the merge arithmetic needs no RocksDB. Part of `make test`.
MERGE_SRCS = csrc/merge/sn_combine.c csrc/base/sn_err.c
$(BUILD)/test_merge: spec/c/test_merge.c $(MERGE_SRCS) csrc/merge/sn_combine.h
	mkdir -p $(BUILD)
	$(CC) -O2 -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Icsrc spec/c/test_merge.c $(MERGE_SRCS) -o $@ -lm

check-merge-test: $(BUILD)/test_merge
	$(BUILD)/test_merge

# Prove the rockspec: build it with the README's command into a scratch tree,
# require it from there and run its demo. Debian's luarocks defaults to Lua
# 5.1, hence --lua-version. The rockspec depends on argparse and lua-cjson
# (what `luarocks install` elsewhere fetches); after `make deps` they are
# Debian's lua-argparse and lua-cjson, which LuaRocks does not see as rocks,
# and the rocks server may be unreachable: --deps-mode none builds without
# resolving them, and the demo below fails if the modules are not there.
ROCK_TREE     = $(BUILD)/rocktree
ROCK_FLAGS    = --lua-version $(LUA_VERSION) make --deps-mode none
rockcheck: deps-check
	rm -rf $(ROCK_TREE)
	luarocks $(ROCK_FLAGS) rockspec/synaptic-scm-1.rockspec --tree $(ROCK_TREE)
	LUA_PATH='$(ROCK_TREE)/share/lua/$(LUA_VERSION)/?.lua;$(ROCK_TREE)/share/lua/$(LUA_VERSION)/?/init.lua' \
	  LUA_CPATH='$(ROCK_TREE)/lib/lua/$(LUA_VERSION)/?.so' \
	  $(LUA) -e 'local s = require "synaptic"; assert(s.floats(3)); print("rockspec ok: synaptic " .. s.version)'
	test -f $(ROCK_TREE)/lib/luarocks/rocks-$(LUA_VERSION)/synaptic/scm-1/docs/api.md
	test -f $(ROCK_TREE)/lib/luarocks/rocks-$(LUA_VERSION)/synaptic/scm-1/examples/persistence_demo.lua
	$(ROCK_TREE)/bin/synaptic --version
	rm -rf $(BUILD)/rockdemo && mkdir -p $(BUILD)/rockdemo && $(ROCK_TREE)/bin/synaptic demo $(BUILD)/rockdemo/store > $(BUILD)/rockdemo.log

# The HTML report seen by a browser: a demo store (examples/report_demo.lua),
# `synaptic report`, headless Chromium's screenshot of the page, and a PNG
# check (spec/support/png_check.py) that fails on a blank page: the
# background must cover under 98 % of it and the charts' blue must show.
REPORT_DIR = $(BUILD)/report
CHROMIUM  ?= chromium
CHROMIUM_FLAGS = --headless --no-sandbox --disable-gpu --disable-background-networking \
                 --disable-component-update --disable-sync --no-first-run --window-size=1200,2000
report-check: deps-check all
	$(LUA_ENV) $(LUA) examples/report_demo.lua $(REPORT_DIR)
	$(LUA_ENV) $(LUA) bin/synaptic report $(REPORT_DIR)/store -o $(REPORT_DIR)/report.html \
	  --node-stats $(REPORT_DIR)/node-stats.json --metric loss --metric response_time_ms --metric success_rate
	profile=$$(mktemp -d) && timeout 120 $(CHROMIUM) $(CHROMIUM_FLAGS) --user-data-dir=$$profile \
	  --screenshot=$(CURDIR)/$(REPORT_DIR)/report.png file://$(CURDIR)/$(REPORT_DIR)/report.html \
	  > $(REPORT_DIR)/chromium.log 2>&1; rc=$$?; rm -rf $$profile; \
	  if [ $$rc -ne 0 ]; then cat $(REPORT_DIR)/chromium.log; exit $$rc; fi
	python3 spec/support/png_check.py $(REPORT_DIR)/report.png

install: all
	mkdir -p $(DESTDIR)$(INST_LIBDIR)/synaptic $(DESTDIR)$(INST_LUADIR)/synaptic/cli $(DESTDIR)$(INST_BINDIR)
	cp $(CORE_SO) $(DESTDIR)$(INST_LIBDIR)/synaptic/core.so
	cp lua/synaptic/*.lua $(DESTDIR)$(INST_LUADIR)/synaptic/
	cp lua/synaptic/cli/*.lua $(DESTDIR)$(INST_LUADIR)/synaptic/cli/
	[ ! -f bin/synaptic ] || install -m 0755 bin/synaptic $(DESTDIR)$(INST_BINDIR)/synaptic

clean:
	rm -rf build build-asan
