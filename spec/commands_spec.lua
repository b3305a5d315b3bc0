-- The commands as the user runs them: installed (`make install`) and from the checkout. They
-- name commands the way the user can type them where they are (help examples, hints, next
-- steps), print --version without any configuration, lay --help out in one column, and come
-- with shell completions (`make completions`, installed by `make install`).
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local commands = require "alloy.commands"

-- Every command with a script of its own, and the alloy command (main = true).
local ALL = {}
for _, c in ipairs(commands.LIST) do
  if c.script then ALL[#ALL + 1] = c end
end
ALL[#ALL + 1] = { script = commands.MAIN.script, installed = commands.MAIN.installed, main = true }

-- make builds and installs for the ABI the suite runs on (`lua5.4` on PATH is that one)
local ABI = run.lua:match("(lua5%.%d)$") or run.lua:match("(luajit)$") or "lua5.4"
local PATH = os.getenv("PATH") or "/usr/bin:/bin"

-- s as a Lua pattern matching itself
local function lit(s) return (s:gsub("%p", "%%%0")) end

local function exists(path) return require("alloy").file_info(path) ~= nil end

local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
  local out = p:read("*a")
  local a, b, c = p:close()
  local code = type(a) == "number" and a or (b == "exit" and c) or (a and 0 or 1)
  return out, code
end

-- The options a command's --help lists ("--connector", ...).
local function options_of(help)
  local block = assert(help:match("\nOptions:\n(.-)\n\n"), help)
  local out = {}
  for o in block:gmatch("%-%-[%w%-]+") do out[#out + 1] = o end
  return out
end

describe("commands", function()
  local sb, uid
  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "ines" }
  end)

  describe("installed with make install into $HOME/.local", function()
    local home, env
    setup(function()
      home = run.tmpdir()
      env = { PATH = home .. "/.local/bin:" .. PATH }
      local out, err, code = readme.run("make install PREFIX=$HOME/.local", { home = home, env = { LUA = ABI } })
      assert(code == 0, out .. err)
    end)
    teardown(function() run.rmdir(home) end)

    it("every command of alloy.commands, with its bash, zsh and fish completions", function()
      local share = home .. "/.local/share/"
      for _, c in ipairs(ALL) do
        assert.equal("755", require("alloy").file_info(home .. "/.local/bin/" .. c.installed).mode, c.installed)
        assert.is_true(exists(share .. "bash-completion/completions/" .. c.installed), c.installed)
        assert.is_true(exists(share .. "zsh/site-functions/_" .. c.installed), c.installed)
        assert.is_true(exists(share .. "fish/vendor_completions.d/" .. c.installed .. ".fish"), c.installed)
      end
    end)

    it("--help names the command as installed, never lua/", function()
      local out, err, code = readme.run("alloy-list-connections --help", { home = home, env = env })
      assert.equal(0, code, err)
      assert.matches("^Usage: alloy%-list%-connections ", out)
      assert.matches("\n  alloy%-list%-connections notion[ \n]", out)
      assert.is_nil(out:find("lua/", 1, true), out)
      for _, c in ipairs(ALL) do
        local r = run.script(c.installed, {}, { shell = c.installed .. " --help", env = env, home = home })
        assert.equal(0, r.code, r.stderr)
        assert.matches("^Usage: " .. lit(c.installed) .. " ", r.stdout)
        assert.is_nil(r.stdout:find("lua/", 1, true), r.stdout)
      end
    end)

    it("next steps and hints name the installed commands", function()
      local e = run.env(sb, uid, env)
      local out, err, code = readme.run("alloy-list-connections notion", { home = home, env = e })
      assert.equal(0, code, err)
      assert.equal("", out)
      assert.equal("No notion connections for user " .. uid .. ".\nCreate one with: alloy-initiate-oauth notion\n", err)
      sb:fault { path = "/token$", status = 200, body = "<html>not the API</html>" }
      local r = run.script("alloy-get-jwt-token", {}, { shell = "alloy-get-jwt-token", env = e, home = home })
      assert.equal(1, r.code)
      assert.matches("\nhint: [^\n]*; to try the known variants: alloy%-get%-jwt%-token %-%-probe\n$", "\n" .. r.stderr)
      assert.is_nil(r.stderr:find("lua/", 1, true), r.stderr)
    end)

    it("--version: one line with its own name, no key or .env needed", function()
      local out, err, code = readme.run("alloy-get-jwt-token --version",
        { home = home, env = env, files = { [".env"] = "this is not KEY=value\n" } })
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.matches("^alloy%-get%-jwt%-token %(lua%-alloy %d+%.%d+%.%d+, libcurl %d+%.%d+%.%d+,"
        .. " Lua[JIT]* [%w%.%-]+%)\n$", out)
    end)
  end)

  describe("from the checkout", function()
    it("--help and next steps name lua5.4 lua/<script>.lua", function()
      local out, err, code = readme.run("lua5.4 lua/list_connections.lua --help")
      assert.equal(0, code, err)
      assert.matches("\n  lua5.4 lua/list_connections.lua notion[ \n]", out)
      assert.is_nil(out:find("alloy-", 1, true), out)
      out, err, code = readme.run("lua5.4 lua/list_connections.lua notion", { env = run.env(sb, uid) })
      assert.equal(0, code, err)
      assert.equal("", out)
      assert.matches("\nCreate one with: lua5.4 lua/initiate_oauth.lua notion\n", err, 1, true)
    end)

    it("run by another path (and after interpreter options), they name the interpreter and that path", function()
      local script = run.root .. "/lua/list_connections.lua"
      local example = "\n  [%w%._%-]+ " .. lit(script .. " notion") .. "[ \n]"
      local r = run.script("list_connections", { "--help" })
      assert.equal(0, r.code, r.stderr)
      assert.matches(example, r.stdout)
      r = run.script("list_connections", {},
        { shell = run.quote(run.lua) .. " -e 'x = 1' " .. run.quote(script) .. " --help" })
      assert.equal(0, r.code, r.stderr)
      assert.matches(example, r.stdout)
    end)

    it("from a deep checkout, every example is one whole line: a command is never wrapped", function()
      local dir = run.tmpdir()
      local deep = dir .. "/" .. ("a-long-directory-name"):rep(4)
      assert(os.execute("ln -s " .. run.quote(run.root) .. " " .. run.quote(deep)))
      for _, c in ipairs(ALL) do
        local script = deep .. "/lua/" .. c.script .. ".lua"
        local r = run.script(c.script, {}, { shell = run.quote(run.lua) .. " " .. run.quote(script) .. " --help" })
        assert.equal(0, r.code, r.stderr)
        local block = assert(r.stdout:match("\nExamples:\n(.-)\n\n"), r.stdout)
        for line in block:gmatch("[^\n]+") do
          -- a command as run here, or a comment under the one before it
          assert.is_truthy(line:match("^  [%w%._%-]+ " .. lit(script)) or line:match("^      %S"),
            c.script .. ": " .. line)
        end
      end
      local r = run.script("list_connections", {},
        { shell = run.quote(run.lua) .. " " .. run.quote(deep .. "/lua/list_connections.lua") .. " --help" })
      assert.matches("\n  [%w%._%-]+ " .. lit(deep .. "/lua/list_connections.lua --json | jq -r '")
        .. "[^\n]+'\n", r.stdout)
      run.rmdir(dir)
    end)

    it("--version on every command: one line on stdout, exit 0, whatever the configuration", function()
      local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua --version")
      assert.equal(0, code, err)
      assert.matches("^get_jwt_token%.lua %(lua%-alloy %d+%.%d+%.%d+, libcurl [%d%.]+, Lua[JIT]* [%w%.%-]+%)\n$", out)
      local dir = run.tmpdir()
      run.write(dir .. "/.env", "ALLOY_TIMEOUT=soon\nnot an assignment\n", "644")
      for _, c in ipairs(ALL) do
        local r = run.script(c.script, { "--version" }, { cwd = dir, env = { ALLOY_BASE_URL = "ftp://x" } })
        assert.equal(0, r.code, r.stderr)
        assert.equal("", r.stderr)
        assert.matches("^" .. c.script .. "%.lua %(lua%-alloy [^\n]+%)\n$", r.stdout)
      end
      run.rmdir(dir)
    end)

    it("--help: every option's description starts in one column, labels at the margin", function()
      for _, c in ipairs(ALL) do
        local r = run.script(c.script, { "--help" })
        assert.equal(0, r.code, r.stderr)
        local block = assert(r.stdout:match("\nOptions:\n(.-)\n\n"), r.stdout)
        local columns = {}
        for line in block:gmatch("[^\n]+") do
          local label, gap = line:match("^   (%-[^ ].-)(  +)%S")
          if label then
            columns[#columns + 1] = 3 + #label + #gap
          else
            -- a label alone (too long to share the line), or a description's continuation
            assert.is_truthy(line:match("^   %-%S[^ ]*") or line:match("^" .. (" "):rep(30) .. "%S"),
              c.script .. ": " .. line)
          end
        end
        assert.is_true(#columns >= (c.main and 2 or 6), c.script)
        for _, col in ipairs(columns) do assert.equal(30, col, c.script .. ":\n" .. block) end
        if block:find("--user", 1, true) then
          assert.matches("\n   %-u <id>, %-%-user <id>  ", "\n" .. block)
        end
      end
      local r = run.script("list_connections", { "--help" })
      assert.matches("\n   -c <id>, --connector <id>  The connector, as the CONNECTOR argument.", r.stdout, 1, true)
    end)
  end)

  describe("make completions", function()
    local out, err, code
    setup(function()
      out, err, code = readme.run("make completions", { env = { LUA = ABI } })
    end)

    it("writes bash, zsh and fish completions for every command, named as the shells look them up", function()
      assert.equal(0, code, out .. err)
      local dir = run.root .. "/" .. assert(out:match("completions: (%S+)/bash,"), out) .. "/"
      for _, c in ipairs(ALL) do
        local bash = dir .. "bash/" .. c.installed
        local text = run.read(bash)
        local syntax, rc = sh("bash -n " .. run.quote(bash))
        assert.equal(0, rc, syntax)
        assert.matches("\ncomplete %-F _" .. lit(c.installed) .. " [^\n]* " .. lit(c.installed)
          .. "\n", text)
        local help = run.script(c.script, { "--help" }).stdout
        local zsh, fish = run.read(dir .. "zsh/_" .. c.installed), run.read(dir .. "fish/" .. c.installed .. ".fish")
        assert.matches("^#compdef " .. lit(c.installed) .. "\n", zsh)
        for _, o in ipairs(options_of(help)) do
          assert.matches(" " .. lit(o) .. "[ \"|)]", text)
          assert.matches(o, zsh, 1, true)
          assert.matches("complete %-c " .. lit(c.installed) .. " [^\n]*%-l " .. lit(o:sub(3)) .. " ", fish)
        end
        assert.is_nil(text:find("--completion", 1, true), "the hidden option is not offered")
      end
    end)

    it("bash completes alloy-list-connections --con to --connector", function()
      local dir = assert(out:match("completions: (%S+)/bash,"), out)
      local file = run.root .. "/" .. dir .. "/bash/alloy-list-connections"
      local got, rc = sh("bash -c " .. run.quote(". " .. run.quote(file)
        .. '; COMP_WORDS=(alloy-list-connections --con); COMP_CWORD=1; _alloy-list-connections;'
        .. ' printf "%s\\n" "${COMPREPLY[@]}"'))
      assert.equal(0, rc, got)
      assert.equal("--connector\n", got)
    end)
  end)
end)
