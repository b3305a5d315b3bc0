-- examples/nvim/ run for real: Neovim headless (LuaJIT, build/luajit/alloy.so) loads the plugin
-- with -u NONE, runs :AlloyToken / :AlloyConnections against the sandbox, and a driver script
-- writes what Neovim ended up with (registers, buffer, messages) to result.json.
--
-- Neovim exits 0 even when a Lua error escapes `luafile`; the driver catches every error and
-- leaves with `cquit 3`, and the spec checks the exit code and that result.json was written.
-- The API key reaches Neovim through a 0600 .env file or a 0600 file `sh` sources, never argv.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"
local alloy = require "alloy"

local ROOT = run.root
local NVIM = os.getenv("ALLOY_TEST_NVIM") or "nvim"

local DRIVER = [[
local R = {}
local ok, err = xpcall(function()
  vim.cmd("set rtp+=" .. vim.fn.fnameescape(%q))
  vim.cmd("runtime plugin/alloy_nvim.lua")
  %s
end, debug.traceback)
R.ok, R.err = ok, (not ok) and tostring(err) or nil
R.messages = vim.fn.execute("messages")
local f = assert(io.open("result.json", "w"))
f:write(vim.fn.json_encode(R))
f:close()
if not ok then vim.cmd("cquit 3") end
]]

-- Runs `body` (Lua, sees the table R) in nvim. opts.env: variables for nvim's environment;
-- opts.dotenv: text of ./.env (mode 0600). -> result table (or nil), exit code, stderr
local function nvim(body, opts)
  opts = opts or {}
  local dir = run.tmpdir()
  run.write(dir .. "/driver.lua", DRIVER:format(ROOT .. "/examples/nvim", body))
  if opts.dotenv then run.write(dir .. "/.env", opts.dotenv, "600") end
  local env = { HOME = dir, XDG_CONFIG_HOME = dir .. "/config", XDG_DATA_HOME = dir .. "/data",
                XDG_STATE_HOME = dir .. "/state", XDG_CACHE_HOME = dir .. "/cache" }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local names, lines = {}, {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do lines[#lines + 1] = k .. "='" .. tostring(env[k]):gsub("'", "'\\''") .. "'" end
  local envfile = dir .. "/env.sh"
  run.write(envfile, "", "600")
  run.write(envfile, table.concat(lines, "\n") .. "\n", "600")
  local inner = "set -a; . ./env.sh; set +a; rm -f ./env.sh; exec timeout 60 " .. run.quote(NVIM)
    .. " --headless -u NONE -i NONE -c 'luafile driver.lua' -c 'qa!'"
  local cmd = "cd " .. run.quote(dir) .. " && env -i PATH=" .. run.quote(os.getenv("PATH") or "/usr/bin:/bin")
    .. " sh -c " .. run.quote(inner) .. " </dev/null >out.txt 2>err.txt"
  local a, b, c = os.execute(cmd)
  local code = type(a) == "number" and (a > 255 and math.floor(a / 256) or a) or (b == "signal" and 128 + c or c)
  local result = run.read(dir .. "/result.json")
  local stderr = run.read(dir .. "/err.txt")
  run.rmdir(dir)
  local ok, doc = pcall(cjson.decode, result)
  return ok and doc or nil, code, stderr
end

describe("examples/nvim", function()
  local sb, env
  local so = ROOT .. "/build/luajit/alloy.so"

  setup(function()
    local _, err, code = readme.run("make LUA=luajit") -- the README's step before trying the plugin
    assert(code == 0, err)
    assert(io.open(so, "rb"), "examples/nvim needs " .. so .. ": run `make LUA=luajit`"):close()
    sb = Sandbox.start()
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    env = { ALLOY_BASE_URL = sb.url, ALLOY_EMBEDDED_URL = sb.embedded_url }
  end)

  local function dotenv(vars)
    local lines = {}
    for k, v in pairs(vars) do lines[#lines + 1] = k .. "=" .. v end
    table.sort(lines)
    return table.concat(lines, "\n") .. "\n"
  end

  it(":AlloyToken puts the user's JWT into \" and the configured register, echoes the expiry", function()
    local uid = sb:create_user { username = "nvim-user" }
    local r, code, stderr = nvim([[
      require("alloy_nvim").setup { register = "a" }
      vim.cmd("AlloyToken")
      R.unnamed, R.a = vim.fn.getreg('"'), vim.fn.getreg("a")
    ]], { dotenv = dotenv { ALLOY_API_KEY = sb.api_key, ALLOY_USER_ID = uid,
                            ALLOY_BASE_URL = sb.url, ALLOY_EMBEDDED_URL = sb.embedded_url } })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    local claims = assert(alloy.jwt_claims(r.unnamed), "register \" holds no JWT: " .. tostring(r.unnamed))
    assert.are.equal(uid, claims.userId)
    assert.are.equal(r.unnamed, r.a)
    local iso = os.date("!%Y-%m-%dT%H:%M:%SZ", claims.exp)
    assert.truthy(r.messages:find("Alloy token for " .. uid .. ' in "" "a, expires ' .. iso .. " (in ", 1, true),
      r.messages)
    assert.is_nil(r.messages:find(r.unnamed, 1, true)) -- the token is not echoed
    local seen = sb:requests()
    assert.are.equal(1, #seen)
    assert.are.equal("/users/" .. uid .. "/token", seen[1].path)
    assert.are.equal("Bearer " .. sb.api_key, seen[1].headers.authorization)
    assert.is_nil(stderr:find(sb.api_key, 1, true))
  end)

  it(":AlloyToken <user> takes the user from the argument and the key from the environment", function()
    local other = sb:create_user {}
    env.ALLOY_API_KEY = sb.api_key
    env.ALLOY_USER_ID = sb:create_user {}
    local r, code = nvim([[
      vim.cmd("AlloyToken ]] .. other .. [[")
      R.unnamed = vim.fn.getreg('"')
    ]], { env = env })
    assert.are.equal(0, code)
    assert.is_true(r.ok, r.err)
    assert.are.equal(other, alloy.jwt_claims(r.unnamed).userId)
  end)

  it(":AlloyConnections lists the connections in a scratch buffer", function()
    local uid = sb:create_user {}
    local c1 = sb:create_credential { userId = uid, connector = "notion", name = "Team wiki" }
    local c2 = sb:create_credential { userId = uid, connector = "slack", name = "Workspace" }
    env.ALLOY_API_KEY, env.ALLOY_USER_ID = sb.api_key, uid
    local r, code = nvim([[
      vim.cmd("AlloyConnections")
      R.name = vim.api.nvim_buf_get_name(0)
      R.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
      R.buftype, R.modifiable, R.swapfile = vim.bo.buftype, vim.bo.modifiable, vim.bo.swapfile
      R.windows = #vim.api.nvim_list_wins()
      vim.cmd("AlloyConnections") -- again: the same buffer, refreshed, no new window
      R.windows2 = #vim.api.nvim_list_wins()
      R.lines2 = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    ]], { env = env })
    assert.are.equal(0, code)
    assert.is_true(r.ok, r.err)
    assert.are.equal("alloy://connections/" .. uid, r.name)
    assert.are.equal("nofile", r.buftype)
    assert.is_false(r.modifiable)
    assert.is_false(r.swapfile)
    assert.are.equal(2, r.windows)
    assert.are.equal(2, r.windows2)
    assert.are.same(r.lines, r.lines2)
    assert.are.equal("Alloy connections for " .. uid .. ": 2", r.lines[1])
    assert.matches("^ID%s+TYPE%s+NAME%s+CREATED$", r.lines[3])
    local text = table.concat(r.lines, "\n")
    for _, c in ipairs({ c1, c2 }) do
      local id = c.credentialId or c.id
      assert.truthy(text:find(id, 1, true), id)
    end
    assert.truthy(text:find("notion", 1, true))
    assert.truthy(text:find("Team wiki", 1, true))
  end)

  it("reports an Alloy failure with a hint and leaves the register alone", function()
    env.ALLOY_API_KEY, env.ALLOY_USER_ID = sb.api_key, "5f0000000000000000000000"
    local r, code = nvim([[
      vim.fn.setreg('"', "before")
      local token, err = require("alloy_nvim").token()
      R.token, R.err_msg, R.unnamed = token, err, vim.fn.getreg('"')
    ]], { env = env })
    assert.are.equal(0, code)
    assert.is_true(r.ok, r.err)
    assert.is_nil(r.token)
    assert.are.equal("before", r.unnamed)
    assert.matches("Alloy: HTTP_404", r.messages, 1, true)
    assert.matches("hint: check ALLOY_USER_ID", r.messages, 1, true)
  end)

  it("says where to set the API key when it is missing; the command fails like a Vim command", function()
    env.ALLOY_USER_ID = "someone"
    local r, code = nvim([[
      R.cmd_ok, R.cmd_err = pcall(vim.cmd, "AlloyToken")
      R.token, R.msg = require("alloy_nvim").token()
    ]], { env = env })
    assert.are.equal(0, code)
    assert.is_true(r.ok, r.err)
    assert.is_false(r.cmd_ok)
    assert.matches("Alloy: ALLOY_API_KEY is not set", r.cmd_err, 1, true)
    assert.is_nil(r.token)
    assert.matches("ALLOY_API_KEY is not set\nhint: .*export ALLOY_API_KEY=", r.msg)
    assert.are.equal(0, #sb:requests())
  end)

  it("turns a Lua error in the driver into a non-zero exit (the harness catches what nvim does not)", function()
    local r, code = nvim([[ error("boom") ]], { env = env })
    assert.are.equal(3, code)
    assert.is_false(r.ok)
    assert.matches("boom", r.err, 1, true)
  end)
end)

-- The README's try-it line, run as printed: from the checkout root, a relative runtimepath,
-- not headless (Neovim draws on a pseudo-terminal from util-linux `script`). The spec types
-- what a user would: it writes register " to a file, then :qa!.
describe("examples/nvim as the README prints it", function()
  local README_CMD = readme.command(
    "nvim -u NONE --cmd 'set rtp+=examples/nvim' -c 'runtime plugin/alloy_nvim.lua' -c AlloyToken")
  local sb

  setup(function()
    assert(io.open(ROOT .. "/build/luajit/alloy.so", "rb"), "needs build/luajit/alloy.so: make LUA=luajit"):close()
    sb = Sandbox.start()
  end)
  teardown(function() if sb then sb:stop() end end)

  it("make LUA=luajit, then " .. README_CMD .. ": the token lands in register \"", function()
    local uid = sb:create_user { username = "readme-nvim-user" }
    local dir = run.tmpdir()
    local env = { HOME = dir, XDG_CONFIG_HOME = dir .. "/config", XDG_DATA_HOME = dir .. "/data",
                  XDG_STATE_HOME = dir .. "/state", XDG_CACHE_HOME = dir .. "/cache", TERM = "xterm",
                  ALLOY_API_KEY = sb.api_key, ALLOY_USER_ID = uid, ALLOY_BASE_URL = sb.url,
                  ALLOY_EMBEDDED_URL = sb.embedded_url }
    local lines = {}
    for k, v in pairs(env) do lines[#lines + 1] = k .. "=" .. run.quote(v) end
    run.write(dir .. "/env.sh", "", "600")
    run.write(dir .. "/env.sh", table.concat(lines, "\n") .. "\n", "600")
    local inner = "set -a; . " .. run.quote(dir .. "/env.sh") .. "; set +a; rm -f " .. run.quote(dir .. "/env.sh")
      .. "; exec timeout 60 script -qefc " .. run.quote(README_CMD) .. " /dev/null"
    local out = dir .. "/screen.txt"
    local keys = assert(io.popen("cd " .. run.quote(ROOT) .. " && env -i PATH=" .. run.quote(os.getenv("PATH"))
      .. " sh -c " .. run.quote(inner) .. " >" .. run.quote(out) .. " 2>&1", "w"))
    local shown = run.wait_for(function()
      local screen = run.read(out)
      return (screen:find("Alloy token for " .. uid, 1, true) or screen:find("Alloy: ", 1, true)) and screen
    end, 30)
    keys:write("\27:call writefile([getreg('\"')], '" .. dir .. "/register.txt')\r:qa!\r")
    keys:flush()
    keys:close()
    local screen, register = run.read(out), run.read(dir .. "/register.txt")
    run.rmdir(dir)

    assert.truthy(shown, "no message from :AlloyToken on the screen:\n" .. screen)
    assert.is_nil(screen:find("cannot load alloy.so", 1, true), screen)
    assert.truthy(screen:find("Alloy token for " .. uid, 1, true), screen)
    local token = register:gsub("\n$", "")
    assert.are.equal(uid, assert(alloy.jwt_claims(token), "register \" holds no JWT: " .. register).userId)
    assert.is_nil(screen:find(token, 1, true)) -- the token is not echoed
    assert.is_nil(screen:find(sb.api_key, 1, true))
    local seen = sb:requests()
    assert.are.equal(1, #seen)
    assert.are.equal("/users/" .. uid .. "/token", seen[1].path)
  end)
end)
