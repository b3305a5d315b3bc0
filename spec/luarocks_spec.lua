-- lua-alloy-scm-1.rockspec: it lists everything, passes `luarocks lint`, builds offline with
-- `luarocks make --deps-mode=none` for Lua 5.4 and 5.1 into a temporary tree, and the
-- installed commands run from that tree (LUA_PATH/LUA_CPATH from `luarocks path`, the way a
-- user of a private tree runs them), including a real token call against the sandbox.
--
-- The build runs in a temporary copy of the checkout: builtin builds leave src/*.o and
-- alloy.so in the source directory.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"
local alloy = require "alloy"

local ROOT = run.root
local ROCKSPEC = "lua-alloy-scm-1.rockspec"
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

-- A copy of what the rockspec builds from, without objects: `luarocks make` builds in place.
local function copy_source(src)
  local out, code = sh("mkdir -p " .. run.quote(src) .. " && cd " .. run.quote(ROOT) .. " && cp -R "
    .. ROCKSPEC .. " src lua " .. run.quote(src) .. " && rm -f " .. run.quote(src) .. "/src/*.o")
  assert.are.equal(0, code, out)
  return src
end

local function command_name(script) -- lua/get_jwt_token.lua -> alloy-get-jwt-token (alloy.commands)
  return require("alloy.commands").by_script[script:match("([^/]+)%.lua$")].installed
end

describe("lua-alloy-scm-1.rockspec", function()
  local spec = load_rockspec(ROOT .. "/" .. ROCKSPEC)

  it("lists every C source, every lua/alloy/*.lua helper and every lua/*.lua script", function()
    local sources = {}
    for _, s in ipairs(spec.build.modules.alloy.sources) do sources[#sources + 1] = s end
    table.sort(sources)
    assert.are.same(ls("src/*.c"), sources)
    for _, f in ipairs(ls("lua/alloy/*.lua")) do
      local mod = "alloy." .. f:match("([^/]+)%.lua$")
      assert.are.equal(f, spec.build.modules[mod], "rockspec misses " .. mod)
    end
    local scripts = ls("lua/*.lua")
    assert.is_true(#scripts >= 4)
    for _, f in ipairs(scripts) do
      assert.are.equal(f, spec.build.install.bin[command_name(f)], "rockspec misses " .. command_name(f))
    end
    -- never a module named alloy.init or a plain alloy.lua: it would hide alloy.so
    assert.is_nil(spec.build.modules["alloy.init"])
    assert.are.equal("table", type(spec.build.modules.alloy))
  end)

  it("passes luarocks lint", function()
    local out, code = sh(run.quote(LUAROCKS) .. " lint " .. run.quote(ROOT .. "/" .. ROCKSPEC))
    assert.are.equal(0, code, out)
  end)

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
      }, { cwd = src, home = home })
      assert.are.equal(0, code, err)
      assert.truthy(io.open(home .. "/.luarocks/lib/lua/5.4/alloy.so"), out)
      assert.matches("Usage: [^\n]*%-%-json", out)
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
        env.ALLOY_EMBEDDED_URL, env.ALLOY_BASE_URL = sb.url, sb.url
        local cwd = run.tmpdir()
        local r = run.script(tree .. "/bin/alloy-get-jwt-token", { "--json" }, { lua = "sh", env = env, cwd = cwd })
        run.rmdir(cwd)
        assert.are.equal(0, r.code, r.stderr)
        local doc = cjson.decode(r.stdout)
        assert.are.equal(uid, alloy.jwt_claims(doc.token).userId)
      end)
    end
  end)
end)
