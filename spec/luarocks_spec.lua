-- The rockspecs (lua-alloy-scm-1 and the release lua-alloy-0.1.0-1): both pass `luarocks lint`,
-- differ only in version and source, and build through the Makefile (build.type "make"). The
-- scm one builds offline with `luarocks make --deps-mode=none` for Lua 5.4 and 5.1 into a
-- temporary tree, leaves no alloy.so or object file outside build/, and the installed commands
-- run from that tree (LUA_PATH/LUA_CPATH from `luarocks path`, the way a user of a private tree
-- runs them), including a real token call against the sandbox. `make install` is checked with
-- DESTDIR/PREFIX and with LIBDIR/LUADIR/BINDIR.
--
-- Builds run in a temporary copy of the checkout, so a failure cannot leave files in it.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"
local alloy = require "alloy"

local ROOT = run.root
local ROCKSPEC = "lua-alloy-scm-1.rockspec"
local RELEASE = "lua-alloy-0.1.0-1.rockspec"
local LUAROCKS = os.getenv("ALLOY_TEST_LUAROCKS") or "luarocks"

-- Shell command -> output (stdout and stderr), exit code
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
  local out = p:read("*a")
  local a, b, c = p:close()
  local code
  if type(a) == "number" then code = a
  elseif b == "exit" then code = c
  else code = a and 0 or 1 end
  return out, code
end

local function load_rockspec(path)
  local env = {}
  local text = run.read(path)
  local chunk
  if setfenv then -- luacheck: ignore 113 (Lua 5.1 / LuaJIT)
    chunk = assert(loadstring(text, "@" .. path)) -- luacheck: ignore 113
    setfenv(chunk, env) -- luacheck: ignore 113
  else
    chunk = assert(load(text, "@" .. path, "t", env))
  end
  chunk()
  return env
end

local function ls(pattern)
  local out = {}
  local p = io.popen("cd " .. run.quote(ROOT) .. " && ls " .. pattern .. " 2>/dev/null")
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

-- A copy of what the rockspec builds from (the Makefile builds into its build/).
local function copy_source(src)
  local out, code = sh("mkdir -p " .. run.quote(src) .. " && cd " .. run.quote(ROOT) .. " && cp -R "
    .. ROCKSPEC .. " Makefile src lua tools " .. run.quote(src))
  assert.are.equal(0, code, out)
  return src
end

local function command_name(script) -- lua/get_jwt_token.lua -> alloy-get-jwt-token (alloy.commands)
  return require("alloy.commands").by_script[script:match("([^/]+)%.lua$")].installed
end

-- #once: the same whatever interpreter runs the suite (it builds for 5.4 and 5.1 itself), so
-- CI runs it in `make test` only, not again on each ABI or under the sanitizers.
describe("lua-alloy-scm-1.rockspec #once", function()
  local spec = load_rockspec(ROOT .. "/" .. ROCKSPEC)

  it("builds with the Makefile, so no list of sources, helpers or scripts can go stale", function()
    assert.are.equal("make", spec.build.type)
    assert.is_nil(spec.build.modules)
    assert.is_nil(spec.build.install)
    -- LUA (the interpreter's path) picks build/<name>/; the install goes to the rock's dirs
    assert.are.equal("$(LUA)", spec.build.build_variables.LUA)
    assert.are.equal("$(LUA_INCDIR)", spec.build.build_variables.LUA_INCDIR)
    for _, v in ipairs({ "LUA", "PREFIX", "LIBDIR", "LUADIR", "BINDIR" }) do
      assert.are.equal("$(" .. v .. ")", spec.build.install_variables[v], v)
    end
  end)

  it("tests with busted (no target that installs packages) and names the optional rocks", function()
    assert.are.same({ type = "busted" }, spec.test)
    assert.are.same({ "busted" }, spec.test_dependencies)
    assert.matches("lua-term", spec.description.detailed, 1, true)
    assert.matches("luasystem", spec.description.detailed, 1, true)
  end)

  it("has the MIT license it declares, in LICENSE", function()
    assert.are.equal("MIT", spec.description.license)
    local text = run.read(ROOT .. "/LICENSE")
    assert.matches("^MIT License\n", text)
    assert.matches("Copyright (c) 2026 the lua-alloy authors", text, 1, true)
    assert.matches("THE SOFTWARE IS PROVIDED \"AS IS\"", text, 1, true)
  end)

  it("has a release rockspec for tag v0.1.0 that differs only in version and source", function()
    local scm, release = load_rockspec(ROOT .. "/" .. ROCKSPEC), load_rockspec(ROOT .. "/" .. RELEASE)
    assert.are.equal("0.1.0-1", release.version)
    assert.are.same({ url = scm.source.url, tag = "v0.1.0" }, release.source)
    for _, t in ipairs({ scm, release }) do t.version, t.source = nil, nil end
    assert.are.same(scm, release)
  end)

  for _, file in ipairs({ ROCKSPEC, RELEASE }) do
    it(file .. " passes luarocks lint", function()
      local out, code = sh(run.quote(LUAROCKS) .. " lint " .. run.quote(ROOT .. "/" .. file))
      assert.are.equal(0, code, out)
    end)
  end

  describe("luarocks make, offline, into a temporary tree", function()
    local sb, tmp
    setup(function()
      sb = Sandbox.start()
      tmp = run.tmpdir()
    end)
    teardown(function()
      if sb then sb:stop() end
      run.rmdir(tmp)
    end)

    it("the README's --local install for your user, then `luarocks path`: the commands are on PATH", function()
      local src, home = copy_source(tmp .. "/src-local"), tmp .. "/home"
      assert.are.equal(0, select(2, sh("mkdir -p " .. run.quote(home))))
      local out, err, code = readme.run({
        "luarocks --lua-version=5.4 make --deps-mode=none --local",
        'eval "$(luarocks --lua-version=5.4 path)"',
        "alloy-get-jwt-token --help",
      }, { cwd = src, home = home, system_lua = true })
      assert.are.equal(0, code, err)
      assert.truthy(io.open(home .. "/.luarocks/lib/lua/5.4/alloy.so"), out)
      assert.matches("Usage: alloy%-get%-jwt%-token ", out)
      assert.matches("[--json]", out, 1, true)
      assert.matches("--probe", out, 1, true)
    end)

    for _, v in ipairs({ "5.4", "5.1" }) do
      it("for Lua " .. v .. ": installs the module, the helpers and the commands, which run", function()
        local src, tree = copy_source(tmp .. "/src" .. v), tmp .. "/tree" .. v
        local lr = run.quote(LUAROCKS) .. " --lua-version=" .. v .. " --tree " .. run.quote(tree)
        local out, code = sh("cd " .. run.quote(src) .. " && " .. lr .. " make --deps-mode=none " .. ROCKSPEC)
        assert.are.equal(0, code, out)
        assert.truthy(io.open(tree .. "/lib/lua/" .. v .. "/alloy.so"), out)
        for _, f in ipairs(ls("lua/alloy/*.lua")) do
          assert.truthy(io.open(tree .. "/share/lua/" .. v .. "/alloy/" .. f:match("[^/]+$")), f)
        end
        -- never a module alloy.init or a plain alloy.lua: either would hide alloy.so
        assert.is_nil(io.open(tree .. "/share/lua/" .. v .. "/alloy/init.lua"))
        assert.is_nil(io.open(tree .. "/share/lua/" .. v .. "/alloy.lua"))
        -- the build stayed in build/lua<v>/: no alloy.so where another Lua's ./?.so finds it
        assert.truthy(io.open(src .. "/build/lua" .. v .. "/alloy.so"), out)
        assert.is_nil(io.open(src .. "/alloy.so"), "luarocks make left alloy.so in the checkout root")
        local stray = sh("cd " .. run.quote(src)
          .. " && find . -path ./build -prune -o \\( -name '*.so' -o -name '*.o' \\) -print")
        assert.are.equal("", stray)

        -- the completions stay in the rock's directory, where the README says
        local rock_dir = sh(lr .. " show --rock-dir lua-alloy"):gsub("%s+$", "")
        assert.truthy(io.open(rock_dir .. "/share/bash-completion/completions/alloy-get-jwt-token"), rock_dir)
        assert.truthy(io.open(rock_dir .. "/share/bash-completion/completions/alloy"), rock_dir)

        local lpath = sh(lr .. " path --lr-path"):gsub("%s+$", "")
        local lcpath = sh(lr .. " path --lr-cpath"):gsub("%s+$", "")
        local env = { LUA_PATH = lpath .. ";;", LUA_CPATH = lcpath .. ";;" }
        for _, f in ipairs(ls("lua/*.lua")) do
          local r = run.script(tree .. "/bin/" .. command_name(f), { "--help" }, { lua = "sh", env = env })
          assert.are.equal(0, r.code, command_name(f) .. ": " .. r.stderr)
          assert.matches("Usage:", r.stdout)
        end

        -- a real token call; the only alloy.so the child can reach is the tree's (clean
        -- environment, a fresh cwd, and paths.lua's checkout entry does not exist there)
        local uid = sb:create_user {}
        env.ALLOY_API_KEY, env.ALLOY_USER_ID = sb.api_key, uid
        env.ALLOY_EMBEDDED_URL, env.ALLOY_BASE_URL = sb.embedded_url, sb.url
        local cwd = run.tmpdir()
        local r = run.script(tree .. "/bin/alloy-get-jwt-token", { "--json" }, { lua = "sh", env = env, cwd = cwd })
        run.rmdir(cwd)
        assert.are.equal(0, r.code, r.stderr)
        local doc = cjson.decode(r.stdout)
        assert.are.equal(uid, alloy.jwt_claims(doc.token).userId)
      end)
    end
  end)

  describe("make install", function()
    local tmp
    setup(function() tmp = run.tmpdir() end)
    teardown(function() run.rmdir(tmp) end)

    -- The files `make install <vars>` puts under root (relative paths of lib, lua and bin).
    local function install(vars, lib, lua, bin)
      local out, code = sh("cd " .. run.quote(ROOT) .. " && make --no-print-directory install LUA=lua5.4 " .. vars)
      assert.are.equal(0, code, out)
      assert.truthy(io.open(lib .. "/alloy.so"), out)
      for _, f in ipairs(ls("lua/alloy/*.lua")) do
        assert.truthy(io.open(lua .. "/alloy/" .. f:match("[^/]+$")), f)
      end
      for _, f in ipairs(ls("lua/*.lua")) do
        local text = run.read(bin .. "/" .. command_name(f))
        assert.matches("^#!/usr/bin/env lua5.4\n", text, nil, command_name(f))
      end
    end

    it("honours DESTDIR and PREFIX (LuaRocks' layout below it)", function()
      local d = tmp .. "/destdir"
      install("DESTDIR=" .. run.quote(d) .. " PREFIX=/opt/alloy",
        d .. "/opt/alloy/lib/lua/5.4", d .. "/opt/alloy/share/lua/5.4", d .. "/opt/alloy/bin")
    end)

    it("honours LIBDIR, LUADIR and BINDIR", function()
      local d = tmp .. "/dirs"
      install("LIBDIR=" .. run.quote(d .. "/lib") .. " LUADIR=" .. run.quote(d .. "/lua") .. " BINDIR="
        .. run.quote(d .. "/bin"), d .. "/lib", d .. "/lua", d .. "/bin")
    end)
  end)
end)
