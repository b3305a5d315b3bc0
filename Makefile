# lua-alloy: build alloy.so per Lua ABI, test, lint, demo, install.
# LUA selects the ABI: lua5.4 (default), lua5.3, lua5.1, luajit.
LUA        ?= lua5.4
LUA_PC     := $(LUA)
BUILD_DIR  := build/$(LUA)
MODULE     := $(BUILD_DIR)/alloy.so

CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null)
CURL_CFLAGS:= $(shell pkg-config --cflags libcurl 2>/dev/null)
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
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

DEB_PKGS   := lua5.4 liblua5.4-dev lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev libcurl4-openssl-dev lua-cjson lua-busted lua-check \
              lua-socket lua-sec lua-argparse lua-term lua-system lua-filesystem luarocks openssl \
              nginx libnginx-mod-http-lua luajit2 libluajit2-5.1-dev neovim pkg-config gcc make

.PHONY: all deps deps-browser test test-all examples-module demo lint clean install bench bench-quick

all: $(MODULE)

$(BUILD_DIR)/%.o: src/%.c $(HDRS)
	@mkdir -p $(BUILD_DIR)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# libcurl is not linked: src/curl_api.c loads it lazily (Lua's RTLD_NOW would bind it all).
$(MODULE): $(OBJS)
	$(CC) $(LDFLAGS_SO) -o $@ $(OBJS) -ldl $(LDFLAGS)

# Installs only what is missing; a no-op when everything is present.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all packages present"; fi

# The spec suite on one ABI; scripts spawned by specs use the same interpreter.
# Headless Chromium for the browser spec of the OAuth round trip (optional: pending without it).
deps-browser:
	@dpkg-query -W -f='$${Status}\n' chromium 2>/dev/null | grep -q '^install ok installed' || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

test: deps all
	ALLOY_TEST_LUA=$(LUA) $(BUSTED) --lua=$(LUA) --cpath='build/$(LUA)/?.so'

# The whole suite on every ABI.
test-all: deps
	@for abi in lua5.1 luajit lua5.3 lua5.4; do \
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

lint:
	luacheck --no-color lua spec bench examples

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
