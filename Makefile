# lua-alloy: build alloy.so per Lua ABI, test, lint, demo, install.
# LUA selects the ABI: lua5.4 (default), lua5.3, lua5.1, luajit, or an interpreter's path
# (LuaRocks passes /usr/bin/lua5.4): its name picks pkg-config and build/<name>/.
SHELL      := /bin/bash
LUA        ?= lua5.4
LUA_NAME   := $(notdir $(LUA))
LUA_PC     := $(LUA_NAME)
BUILD_DIR  := build/$(LUA_NAME)
MODULE     := $(BUILD_DIR)/alloy.so

CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# Deferred (=, not :=): pkg-config is asked when a compile runs, after `deps-*` may have
# installed the headers, not when make first reads this file.
# LUA_INCDIR and CURL_INCDIR (LuaRocks passes them) come before what pkg-config knows.
LUA_CFLAGS  = $(if $(LUA_INCDIR),-I$(LUA_INCDIR)) $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null)
CURL_CFLAGS = $(if $(CURL_INCDIR),-I$(CURL_INCDIR)) $(shell pkg-config --cflags libcurl 2>/dev/null)
ALL_CFLAGS  = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -pthread -fvisibility=hidden \
              $(WARN) $(LUA_CFLAGS) $(CURL_CFLAGS) $(CFLAGS)
LDFLAGS_SO := -shared

SRCS       := $(wildcard src/*.c)
HDRS       := $(wildcard src/*.h)
OBJS       := $(patsubst src/%.c,$(BUILD_DIR)/%.o,$(SRCS))

# LuaRocks-style install locations.
PREFIX     ?= /usr/local
LUA_VERSION_DIR := $(patsubst lua%,%,$(subst luajit,5.1,$(LUA_NAME)))
LIBDIR     ?= $(PREFIX)/lib/lua/$(LUA_VERSION_DIR)
LUADIR     ?= $(PREFIX)/share/lua/$(LUA_VERSION_DIR)
BINDIR     ?= $(PREFIX)/bin
# Shell completions, where bash-completion, zsh and fish look for them, beside the commands:
# <the directory holding BINDIR>/share, which is $(PREFIX)/share unless BINDIR is moved.
SHAREDIR    ?= $(patsubst %/,%,$(dir $(BINDIR)))/share
BASHCOMPDIR ?= $(SHAREDIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(SHAREDIR)/zsh/site-functions
FISHCOMPDIR ?= $(SHAREDIR)/fish/vendor_completions.d

BUSTED     := busted
# "script installed-name" per line, for every command lua/alloy/commands.lua names with a
# script, and the alloy command: a new row there is installed and completed with no change here.
LIST_COMMANDS = $(LUA) -e 'package.path = "lua/?.lua;" .. package.path' \
  -e 'local c = require("alloy.commands"); for _, r in ipairs(c.LIST) do if r.script then print(r.script, r.installed) end end; print(c.MAIN.script, c.MAIN.installed)'

# Debian packages, by what needs them. Each deps-* target installs only what is missing
# (as root, or through sudo); `make` itself never installs anything.
PKGS_ABI_lua5.4  := lua5.4 liblua5.4-dev
PKGS_ABI_lua5.3  := lua5.3 liblua5.3-dev
PKGS_ABI_lua5.1  := lua5.1 liblua5.1-0-dev
PKGS_ABI_luajit  := luajit2 libluajit2-5.1-dev
# building alloy.so for $(LUA)
PKGS_BUILD   := gcc make pkg-config libcurl4-openssl-dev $(PKGS_ABI_$(LUA))
# running the scripts: JSON, option parsing, the OAuth listener, tty and clock helpers
PKGS_RUN     := lua-cjson lua-argparse lua-socket lua-term lua-system
# the local Alloy sandbox (nginx with its Lua module; pgrep for its process handling; curl to
# finish an OAuth flow by hand against `make sandbox`)
PKGS_SANDBOX := nginx libnginx-mod-http-lua procps curl
# the spec suite: busted, TLS test certificates and a TLS client (LuaSec), libuv for Lua (luv: the
# event-loop specs), git (repositories for the .env warning), the LuaJIT build for the Neovim and
# OpenResty specs, Neovim, and LuaRocks with Lua 5.1 for the packaging spec
PKGS_TEST    := lua-busted openssl lua-sec lua-luv git $(PKGS_ABI_luajit) neovim luarocks $(PKGS_ABI_lua5.1)
# CI's other checks: the other ABIs, sanitizers and fuzzing, valgrind, luacheck
PKGS_CHECK   := $(PKGS_ABI_lua5.3) $(PKGS_ABI_lua5.1) clang libclang-rt-14-dev valgrind lua-check

# $(call install_missing,packages): apt-get install what dpkg does not list as installed.
define install_missing
@missing=$$(for p in $(sort $(1)); do \
  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed$$' || echo $$p; done); \
missing=$$(echo $$missing); \
if [ -z "$$missing" ]; then exit 0; fi; \
if [ "$$(id -u)" = 0 ]; then sudo=; \
elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
else echo "make: missing Debian packages: $$missing" >&2; \
  echo "make: install them as root: apt-get install $$missing" >&2; exit 2; fi; \
echo "make: installing $$missing" >&2; \
{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >&2
endef

.PHONY: all deps deps-build deps-run deps-demo deps-test deps-check check-build-deps print-packages deps-browser test run-tests test-all examples-module demo lint clean install completions bench bench-quick soak sanitize sanitize-build valgrind fuzz fuzz-build sandbox

all: $(MODULE) $(BUILD_DIR)/luac/index

# The modules as this ABI's bytecode, for a one-shot command that would otherwise compile them
# all on every run (alloy.paths loads one only while its source is unchanged). argparse too:
# it is most of the source a command compiles.
LUA_MODULES := $(wildcard lua/alloy/*.lua lua/alloy/cmd/*.lua)
$(BUILD_DIR)/luac/index: $(LUA_MODULES) tools/precompile.lua
	@mkdir -p $(BUILD_DIR)/luac
	@echo "precompile: $(BUILD_DIR)/luac"
	@$(LUA) tools/precompile.lua $(BUILD_DIR)/luac argparse \
	  $(foreach f,$(LUA_MODULES),$(subst /,.,$(patsubst lua/%.lua,%,$(f)))=$(f))

$(BUILD_DIR)/%.o: src/%.c $(HDRS) | check-build-deps
	@mkdir -p $(BUILD_DIR)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# libcurl is not linked: src/curl_api.c loads it lazily (Lua's RTLD_NOW would bind it all).
$(MODULE): $(OBJS)
	$(CC) $(LDFLAGS_SO) -o $@ $(OBJS) -ldl -pthread $(LDFLAGS)

# A clear message instead of "lua.h: No such file or directory".
check-build-deps:
	@[ -n "$(LUA_INCDIR)" ] || pkg-config --exists $(LUA_PC) libcurl 2>/dev/null || { \
	  echo "make: the $(LUA) or libcurl headers are missing (pkg-config $(LUA_PC) libcurl)." >&2; \
	  echo "make: run 'make deps-build' as root, or: apt-get install $(PKGS_BUILD)" >&2; exit 2; }

deps-build:
	$(call install_missing,$(PKGS_BUILD))
deps-run:
	$(call install_missing,$(PKGS_BUILD) $(PKGS_RUN))
deps-demo:
	$(call install_missing,$(PKGS_BUILD) $(PKGS_RUN) $(PKGS_SANDBOX))
deps-test:
	$(call install_missing,$(PKGS_BUILD) $(PKGS_RUN) $(PKGS_SANDBOX) $(PKGS_TEST))
deps-check:
	$(call install_missing,$(PKGS_BUILD) $(PKGS_RUN) $(PKGS_SANDBOX) $(PKGS_TEST) $(PKGS_CHECK))
deps: deps-check

# Every Debian package any target may install, one per line.
print-packages:
	@echo $(sort $(PKGS_BUILD) $(PKGS_RUN) $(PKGS_SANDBOX) $(PKGS_TEST) $(PKGS_CHECK)) | tr " " "\n"

# The spec suite on one ABI; scripts spawned by specs use the same interpreter.
# Headless Chromium for the browser spec of the OAuth round trip (optional: pending without it).
deps-browser:
	@dpkg-query -W -f='$${Status}\n' chromium 2>/dev/null | grep -q '^install ok installed' || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The spec suite on one ABI; scripts spawned by specs use the same interpreter. Neovim and
# nginx embed LuaJIT, so their specs need the LuaJIT build whatever the suite runs on.
# SPECS narrows the run (spec files or directories); SKIP_SPECS=once,... leaves out the
# describes tagged so (#once: the same whatever the interpreter; #scripts: only child
# processes). Ends with a plain "N passed, N failed" line. The build runs in a second make,
# after deps-test, so it sees what was installed.
SPECS ?=
SKIP_SPECS ?=
SKIP_TAGS = $(if $(SKIP_SPECS),--exclude-tags=$(SKIP_SPECS))
test: deps-test
	@$(MAKE) --no-print-directory run-tests

run-tests: all examples-module
	@set -o pipefail; ALLOY_TEST_LUA=$(LUA) $(BUSTED) --lua=$(LUA) --cpath='build/$(LUA)/?.so' $(SKIP_TAGS) $(SPECS) \
	  | tee $(BUILD_DIR)/busted.log; rc=$$?; \
	awk '/ successes \/ .* failures \/ .* errors/ { print $$1 " passed, " $$4 + $$7 " failed" }' \
	  $(BUILD_DIR)/busted.log | tail -n 1; exit $$rc

examples-module:
	@$(MAKE) --no-print-directory all LUA=luajit

# The whole suite on every ABI (ABIS narrows it).
ABIS ?= lua5.1 luajit lua5.3 lua5.4
test-all: deps-check
	@for abi in $(ABIS); do \
	  echo "== $$abi"; $(MAKE) --no-print-directory run-tests LUA=$$abi || exit 1; done

# The main job on the built-in sandbox: a real JWT from a local Alloy.
demo: deps-demo
	@$(MAKE) --no-print-directory all >&2
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
BUSTED_BIN     = $(shell command -v busted 2>/dev/null || echo /usr/bin/busted)
SAN_BUSTED    ?= -o utfTerminal

FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 30
FUZZ_DIR      := build/fuzz
FUZZ_TARGETS  := fuzz_url fuzz_header fuzz_b64url fuzz_errors
FUZZ_FLAGS     = -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -Wall -Wextra -Isrc \
                 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                 $(shell pkg-config --cflags lua5.4 libcurl 2>/dev/null)
FUZZ_LUA_LIBS  = $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
VALGRIND_SCRIPTS ?= 1
# with the scripts outside memcheck, the #scripts describes have nothing left for it to check
comma           := ,
VALGRIND_SKIP    = $(if $(filter 1,$(VALGRIND_SCRIPTS)),$(SKIP_TAGS),--exclude-tags=$(if $(SKIP_SPECS),$(SKIP_SPECS)$(comma))scripts)

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
	  fuzz/lua-asan $(BUSTED_BIN) --ignore-lua $(SAN_BUSTED) $(SKIP_TAGS); rc=$$?; \
	if ls $(SAN_DIR)/logs/* >/dev/null 2>&1; then \
	  echo "sanitize: reports in $(SAN_DIR)/logs:"; cat $(SAN_DIR)/logs/*; exit 1; fi; \
	echo "sanitize: no ASan/UBSan/LSan reports"; exit $$rc

valgrind: all
	@command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
	@rm -rf build/valgrind/logs
	$(if $(filter 1,$(VALGRIND_SCRIPTS)),ALLOY_TEST_LUA=$(CURDIR)/fuzz/lua-valgrind) \
	  fuzz/lua-valgrind $(BUSTED_BIN) --ignore-lua $(SAN_BUSTED) $(VALGRIND_SKIP); rc=$$?; \
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
	luacheck --no-color lua spec bench examples fuzz tools

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

# Completion scripts for bash, zsh and fish, from each command's own option parser (its
# hidden --completion SHELL), named as the shells look them up. One directory per build, so
# an install for one ABI never races a rewrite for another.
COMPLETIONS := $(BUILD_DIR)/completions
completions:
	@rm -rf $(COMPLETIONS) && mkdir -p $(COMPLETIONS)/bash $(COMPLETIONS)/zsh $(COMPLETIONS)/fish
	@set -o pipefail; $(LIST_COMMANDS) | while read -r script name; do \
	  $(LUA) lua/$$script.lua --completion bash > $(COMPLETIONS)/bash/$$name && \
	  $(LUA) lua/$$script.lua --completion zsh > $(COMPLETIONS)/zsh/_$$name && \
	  $(LUA) lua/$$script.lua --completion fish > $(COMPLETIONS)/fish/$$name.fish || exit 1; \
	done
	@echo "completions: $(COMPLETIONS)/bash, zsh, fish"

# Each command becomes alloy-get-jwt-token and so on: its script behind a #! line and a line
# that puts this install's LUADIR and LIBDIR first, so a PREFIX off Lua's default paths
# ($$HOME/.local) needs no LUA_PATH. LuaRocks passes PREFIX, BINDIR, LUADIR and LIBDIR.
install: all completions
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LUADIR)/alloy/cmd $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(MODULE) $(DESTDIR)$(LIBDIR)/alloy.so
	install -m 0644 lua/alloy/*.lua $(DESTDIR)$(LUADIR)/alloy/
	install -m 0644 lua/alloy/cmd/*.lua $(DESTDIR)$(LUADIR)/alloy/cmd/
	@# the bytecode cache (alloy.paths uses an entry only while its source is what it was made from)
	rm -rf $(DESTDIR)$(LUADIR)/alloy/luac
	cp -R $(BUILD_DIR)/luac $(DESTDIR)$(LUADIR)/alloy/luac
	chmod -R u=rwX,go=rX $(DESTDIR)$(LUADIR)/alloy/luac
	@set -o pipefail; $(LIST_COMMANDS) | while read -r script name; do \
	  { printf '#!/usr/bin/env %s\n' '$(LUA)' && \
	    printf 'package.path = [==[%s/?.lua;]==] .. package.path; package.cpath = [==[%s/?.so;]==] .. package.cpath\n' \
	      '$(LUADIR)' '$(LIBDIR)' && cat lua/$$script.lua; } > '$(DESTDIR)$(BINDIR)'/$$name && \
	  chmod 0755 '$(DESTDIR)$(BINDIR)'/$$name && echo "installed $(BINDIR)/$$name" || exit 1; \
	done
	install -m 0644 $(COMPLETIONS)/bash/* $(DESTDIR)$(BASHCOMPDIR)/
	install -m 0644 $(COMPLETIONS)/zsh/* $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 0644 $(COMPLETIONS)/fish/* $(DESTDIR)$(FISHCOMPDIR)/

# The local Alloy in the foreground until Ctrl-C, seeded with a user and one connection; it
# writes .env.sandbox (0600; never .env) and prints the commands to try against it.
sandbox: deps-demo
	@$(MAKE) --no-print-directory all
	@$(LUA) spec/sandbox/serve.lua
