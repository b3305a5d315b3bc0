# lua-alloy: build alloy.so per Lua ABI, test, lint, demo, install.
# LUA selects the ABI: lua5.4 (default), lua5.3, lua5.1, luajit.
SHELL      := /bin/bash
LUA        ?= lua5.4
LUA_PC     := $(LUA)
BUILD_DIR  := build/$(LUA)
MODULE     := $(BUILD_DIR)/alloy.so

CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null)
CURL_CFLAGS:= $(shell pkg-config --cflags libcurl 2>/dev/null)
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -pthread -fvisibility=hidden \
              $(WARN) $(LUA_CFLAGS) $(CURL_CFLAGS) $(CFLAGS)
LDFLAGS_SO := -shared

SRCS       := $(wildcard src/*.c)
HDRS       := $(wildcard src/*.h)
OBJS       := $(patsubst src/%.c,$(BUILD_DIR)/%.o,$(SRCS))

# LuaRocks-style install locations.
PREFIX     ?= /usr/local
LUA_VERSION_DIR := $(patsubst lua%,%,$(subst luajit,5.1,$(LUA)))
LIBDIR     ?= $(PREFIX)/lib/lua/$(LUA_VERSION_DIR)
LUADIR     ?= $(PREFIX)/share/lua/$(LUA_VERSION_DIR)
BINDIR     ?= $(PREFIX)/bin

BUSTED     := busted
SCRIPTS    := get_jwt_token initiate_oauth test_oauth list_connections

DEB_PKGS   := procps valgrind clang libclang-rt-14-dev lua5.4 liblua5.4-dev lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev libcurl4-openssl-dev lua-cjson lua-busted lua-check \
              lua-socket lua-sec lua-argparse lua-term lua-system lua-filesystem luarocks openssl \
              nginx libnginx-mod-http-lua luajit2 libluajit2-5.1-dev neovim pkg-config gcc make

.PHONY: all deps deps-browser test test-all examples-module demo lint clean install bench bench-quick soak sanitize sanitize-build valgrind fuzz fuzz-build

all: $(MODULE)

$(BUILD_DIR)/%.o: src/%.c $(HDRS)
	@mkdir -p $(BUILD_DIR)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# libcurl is not linked: src/curl_api.c loads it lazily (Lua's RTLD_NOW would bind it all).
$(MODULE): $(OBJS)
	$(CC) $(LDFLAGS_SO) -o $@ $(OBJS) -ldl -pthread $(LDFLAGS)

# Installs only what is missing; a no-op when everything is present.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "make deps: all packages present"; fi

# The spec suite on one ABI; scripts spawned by specs use the same interpreter.
# Headless Chromium for the browser spec of the OAuth round trip (optional: pending without it).
deps-browser:
	@dpkg-query -W -f='$${Status}\n' chromium 2>/dev/null | grep -q '^install ok installed' || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The spec suite on one ABI; scripts spawned by specs use the same interpreter. Neovim and
# nginx embed LuaJIT, so their specs need the LuaJIT build whatever the suite runs on.
# Ends with a plain "N passed, N failed" line.
test: deps all examples-module
	@set -o pipefail; ALLOY_TEST_LUA=$(LUA) $(BUSTED) --lua=$(LUA) --cpath='build/$(LUA)/?.so' \
	  | tee $(BUILD_DIR)/busted.log; rc=$$?; \
	awk '/ successes \/ .* failures \/ .* errors/ { print $$1 " passed, " $$4 + $$7 " failed" }' \
	  $(BUILD_DIR)/busted.log | tail -n 1; exit $$rc

examples-module:
	@$(MAKE) --no-print-directory all LUA=luajit

# The whole suite on every ABI (ABIS narrows it).
ABIS ?= lua5.1 luajit lua5.3 lua5.4
test-all: deps
	@for abi in $(ABIS); do \
	  echo "== $$abi"; $(MAKE) --no-print-directory test LUA=$$abi || exit 1; done

# The main job on the built-in sandbox: a real JWT from a local Alloy.
demo: deps all
	@$(LUA) spec/sandbox/demo.lua

# Speed and memory beside the peers (raw C libcurl, curl, socket.http, Node): bench/RESULTS.md.
# Never a pass/fail test. BENCH_QUICK=1 (bench-quick) is a short smoke run.
bench: all
	$(LUA) bench/run.lua

bench-quick: all
	BENCH_QUICK=1 $(LUA) bench/run.lua

# 10,000 requests through one client with 10% injected faults: every one accounted for, no
# RSS growth past 2 MB after the first 1,000, no fd leak. Exits 1 when an invariant fails.
soak: all
	$(LUA) bench/soak.lua

# Memory safety: the whole suite with ASan+UBSan (sanitize) or under memcheck (valgrind);
# libFuzzer targets for the parsers of untrusted input (fuzz). fuzz/README.md explains each.
SAN_CC        ?= gcc
SAN_DIR       := build/asan
SAN_MODULE    := $(SAN_DIR)/alloy.so
SAN_FLAGS     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=undefined
SAN_LEAKS     ?= 1
BUSTED_BIN    := $(shell command -v busted 2>/dev/null || echo /usr/bin/busted)
SAN_BUSTED    ?= -o utfTerminal

FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 30
FUZZ_DIR      := build/fuzz
FUZZ_TARGETS  := fuzz_url fuzz_header fuzz_b64url fuzz_errors
FUZZ_FLAGS    := -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -Wall -Wextra -Isrc \
                 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                 $(shell pkg-config --cflags lua5.4 libcurl 2>/dev/null)
FUZZ_LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
VALGRIND_SCRIPTS ?= 1

$(SAN_MODULE): $(wildcard src/*.c src/*.h)
	@mkdir -p $(SAN_DIR)
	$(SAN_CC) -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden -Wall -Wextra \
	  $(shell pkg-config --cflags lua5.4 libcurl) $(SAN_FLAGS) -shared -o $@ \
	  $(wildcard src/*.c) -ldl

sanitize-build: $(SAN_MODULE)

sanitize: $(SAN_MODULE)
	@rm -rf $(SAN_DIR)/logs
	@fuzz/lua-asan -e 'require "alloy"; for l in io.lines("/proc/self/maps") do if l:find("build/asan/alloy.so", 1, true) then os.exit(0) end end; io.stderr:write("sanitize: the ASan module was not loaded\n"); os.exit(1)'
	ALLOY_DETECT_LEAKS=$(SAN_LEAKS) ALLOY_TEST_LUA=$(CURDIR)/fuzz/lua-asan \
	  fuzz/lua-asan $(BUSTED_BIN) --ignore-lua $(SAN_BUSTED); rc=$$?; \
	if ls $(SAN_DIR)/logs/* >/dev/null 2>&1; then \
	  echo "sanitize: reports in $(SAN_DIR)/logs:"; cat $(SAN_DIR)/logs/*; exit 1; fi; \
	echo "sanitize: no ASan/UBSan/LSan reports"; exit $$rc

valgrind: all
	@command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
	@rm -rf build/valgrind/logs
	$(if $(filter 1,$(VALGRIND_SCRIPTS)),ALLOY_TEST_LUA=$(CURDIR)/fuzz/lua-valgrind) \
	  fuzz/lua-valgrind $(BUSTED_BIN) --ignore-lua $(SAN_BUSTED); rc=$$?; \
	find build/valgrind/logs -type f -size 0 -delete; \
	if ls build/valgrind/logs/* >/dev/null 2>&1; then \
	  echo "valgrind: reports in build/valgrind/logs:"; cat build/valgrind/logs/*; exit 1; fi; \
	echo "valgrind: no memcheck errors, no definite leaks"; exit $$rc

$(FUZZ_DIR)/fuzz_url $(FUZZ_DIR)/fuzz_header $(FUZZ_DIR)/fuzz_b64url: $(FUZZ_DIR)/%: fuzz/%.c fuzz/fuzz_common.h src/url.c src/url.h src/buf.h
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< src/url.c

# The only binary that links liblua: errors.c needs a lua_State (and lua-cjson, via cpath).
$(FUZZ_DIR)/fuzz_errors: fuzz/fuzz_errors.c fuzz/fuzz_common.h src/errors.c src/errors.h
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< src/errors.c $(FUZZ_LUA_LIBS) -lm

fuzz-build: $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/crashes
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  printf 'fuzz: %-18s %3ss ... ' $$t $(FUZZ_SECONDS); \
	  if $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	      -dict=fuzz/$$t.dict -artifact_prefix=$(FUZZ_DIR)/crashes/$$t- \
	      $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t > $(FUZZ_DIR)/$$t.log 2>&1; then \
	    grep -ho 'Done [0-9]* runs in [0-9]* second' $(FUZZ_DIR)/$$t.log | tail -1; \
	  else \
	    fail=1; echo FAILED; grep -A1 'INVARIANT\|ERROR:\|runtime error\|Test unit written' $(FUZZ_DIR)/$$t.log | head -12; \
	  fi; \
	done; \
	if [ $$fail = 1 ]; then echo "fuzz: crashes in $(FUZZ_DIR)/crashes/ (reproduce: $(FUZZ_DIR)/<target> <file>)"; fi; \
	exit $$fail

lint:
	luacheck --no-color lua spec bench examples fuzz

# libcurl's compile-time checks of curl_easy_setopt/getinfo argument types (typecheck-gcc.h),
# which the run-time loading in src/curl_api.h bypasses: every source against the real
# macros. -Wsystem-headers: the checks expand inside curl.h, a system header here.
.PHONY: typecheck
typecheck:
	@for f in $(SRCS); do \
	  $(CC) $(ALL_CFLAGS) -O2 -DALLOY_TYPECHECK -Wsystem-headers -Werror -c $$f -o /dev/null || exit 1; done
	@echo "typecheck: curl_easy_setopt/getinfo arguments match libcurl's types"

clean:
	rm -rf build

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LUADIR)/alloy $(DESTDIR)$(BINDIR)
	install -m 0755 $(MODULE) $(DESTDIR)$(LIBDIR)/alloy.so
	install -m 0644 lua/alloy/*.lua $(DESTDIR)$(LUADIR)/alloy/
	@# each script becomes a command, alloy-get-jwt-token and so on
	for s in $(SCRIPTS); do \
	  install -m 0755 lua/$$s.lua $(DESTDIR)$(BINDIR)/alloy-$$(echo $$s | tr _ -); \
	  sed -i '1i #!/usr/bin/env $(LUA)' $(DESTDIR)$(BINDIR)/alloy-$$(echo $$s | tr _ -); done
