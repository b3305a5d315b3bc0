-- examples/nvim/ run for real: Neovim headless (LuaJIT, build/luajit/alloy.so) loads the plugin
-- with -u NONE, runs its commands against the sandbox, and a driver script writes what Neovim
-- ended up with (registers, buffers, messages, what callbacks got) to result.json.
--
-- Every request of the plugin is started on vim.loop: a command returns before its answer is
-- in, so a driver waits with vim.wait (which runs the loop, as the editor does between keys)
-- until require("alloy_nvim").pending() is 0. Nothing here asserts a duration: a stalled
-- route is one the sandbox holds for 30 s, and what the editor did meanwhile is counted.
--
-- Neovim exits 0 even when a Lua error escapes `luafile`; the driver catches every error and
-- leaves with `cquit 3`, and the spec checks the exit code and that result.json was written.
-- The API key reaches Neovim through a 0600 env file or a 0600 file `sh` sources, never argv.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"
local alloy = require "alloy"

local ROOT = run.root
local NVIM = os.getenv("ALLOY_TEST_NVIM") or "nvim"

local DRIVER = [[
local R = {}
local function settled(ms) -- runs the loop until no call of the plugin is in progress
  return vim.wait(ms or 10000, function() return require("alloy_nvim").pending() == 0 end, 10)
end
local function lines(buf) return vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false) end
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

-- Runs `body` (Lua, sees R, settled(ms), lines(buf)) in nvim. opts.env: variables for nvim's
-- environment; opts.files: { [name] = text } written 0600 in its directory first.
-- -> result table (or nil), exit code, stderr
local function nvim(body, opts)
  opts = opts or {}
  local dir = run.tmpdir()
  run.write(dir .. "/driver.lua", DRIVER:format(ROOT .. "/examples/nvim", body))
  for name, text in pairs(opts.files or {}) do
    if name:find("/", 1, true) then os.execute("mkdir -p " .. run.quote(dir .. "/" .. name:match("^(.*)/"))) end
    run.write(dir .. "/" .. name, "", "600")
    run.write(dir .. "/" .. name, text, "600")
  end
  local env = { HOME = dir, XDG_CONFIG_HOME = dir .. "/config", XDG_DATA_HOME = dir .. "/data",
                XDG_STATE_HOME = dir .. "/state", XDG_CACHE_HOME = dir .. "/cache", TZ = "UTC" }
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

-- The env file `make sandbox` writes, for the plugin's env_file option.
local function env_file(sb, uid, connection)
  return ("ALLOY_API_KEY=%s\nALLOY_USER_ID=%s\nALLOY_BASE_URL=%s\nALLOY_EMBEDDED_URL=%s\nCONNECTION_ID=%s\n")
    :format(sb.api_key, uid, sb.url, sb.embedded_url, connection or "")
end

local function count(list, pred)
  local n = 0
  for _, v in ipairs(list) do if pred(v) then n = n + 1 end end
  return n
end

describe("examples/nvim", function()
  local sb, uid, conn
  local so = ROOT .. "/build/luajit/alloy.so"

  setup(function()
    local _, err, code = readme.run("make LUA=luajit") -- the docs' step before trying the plugin
    assert(code == 0, err)
    assert(io.open(so, "rb"), "examples/nvim needs " .. so .. ": run `make LUA=luajit`"):close()
    sb = Sandbox.start()
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "nvim-user" }
    conn = sb:create_credential { userId = uid, connector = "slack", name = "Workspace" }.credentialId
  end)

  local function files() return { [".env.sandbox"] = env_file(sb, uid, conn) } end

  it(":AlloyToken returns at once; the JWT lands in \" and the configured register; the message says where", function()
    local r, code, stderr = nvim([[
      require("alloy_nvim").setup { env_file = ".env.sandbox", register = "a" }
      vim.cmd("AlloyToken")
      R.pending, R.before = require("alloy_nvim").pending(), vim.fn.getreg('"') -- the answer is not in yet
      R.settled = settled()
      R.unnamed, R.a = vim.fn.getreg('"'), vim.fn.getreg("a")
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.are.equal(1, r.pending)
    assert.are.equal("", r.before)
    assert.is_true(r.settled)
    local claims = assert(alloy.jwt_claims(r.unnamed), "register \" holds no JWT: " .. tostring(r.unnamed))
    assert.are.equal(uid, claims.userId)
    assert.are.equal(r.unnamed, r.a)
    assert.matches("Alloy: token for " .. uid .. ' in registers " and a, expires '
      .. os.date("!%H:%M", claims.exp) .. " %(in %d+[mh]%)", r.messages)
    assert.is_nil(r.messages:find(r.unnamed, 1, true)) -- the token is not shown
    local seen = sb:requests()
    assert.are.equal(1, #seen)
    assert.are.equal("/users/" .. uid .. "/token", seen[1].path)
    assert.are.equal("Bearer " .. sb.api_key, seen[1].headers.authorization)
    assert.is_nil(stderr:find(sb.api_key, 1, true))
  end)

  it("keeps the editor answering while the sandbox stalls; :AlloyCancel cancels (one CANCELLED callback)", function()
    sb:fault { path = "/token$", delay = 30 }
    local r, code, stderr = nvim([[
      vim.g.alloy_env_file = ".env.sandbox" -- the global form of the option
      vim.fn.setreg('"', "before")
      local alloy_nvim = require "alloy_nvim"
      R.callbacks = {}
      R.call = alloy_nvim.token(nil, function(token, msg, code)
        R.callbacks[#R.callbacks + 1] = { token = token or false, msg = msg, code = code }
      end) ~= nil
      R.ticks, R.answered = 0, 0
      local timer = vim.fn.timer_start(10, function()
        R.ticks = R.ticks + 1
        if vim.fn.getline(1) == "" then R.answered = R.answered + 1 end -- a vim.fn call returns meanwhile
        if R.ticks == 5 then
          R.pending_at_5 = alloy_nvim.pending()
          vim.cmd("AlloyCancel")
        end
      end, { ["repeat"] = -1 })
      R.settled = settled(20000)
      vim.wait(100, function() return false end) -- room for a second callback, which must not come
      vim.fn.timer_stop(timer)
      vim.cmd("AlloyCancel")
      R.register = vim.fn.getreg('"')
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.is_true(r.call)
    assert.are.equal(1, r.pending_at_5) -- five ticks, and still waiting
    assert.is_true(r.answered >= 5)
    assert.is_true(r.settled)
    assert.are.same({ { token = false, msg = "Alloy: token for " .. uid .. " cancelled", code = "CANCELLED" } },
      r.callbacks)
    assert.are.equal("before", r.register)
    assert.matches("Alloy: cancelled 1 call\n", r.messages, 1, true)
    assert.matches("Alloy: token for " .. uid .. " cancelled\n", r.messages, 1, true)
    assert.matches("Alloy: no call in progress", r.messages, 1, true)
    assert.is_nil(r.messages:find("Error", 1, true))
    assert.are.equal(1, #sb:requests()) -- it was out when cancelled
  end)

  it("closing the buffer a call writes into cancels it; quitting with a call out is clean", function()
    sb:fault { path = "/actions/chat_postMessage$", delay = 30 }
    sb:fault { path = "/credentials/users/", delay = 30 }
    sb:fault { path = "/token$", delay = 30 }
    local r, code, stderr = nvim([[
      local alloy_nvim = require("alloy_nvim").setup { env_file = ".env.sandbox" }
      R.got = {}
      local function note(name) return function(v, msg, code) R.got[#R.got + 1] = { name, v == nil, msg, code } end end
      vim.api.nvim_buf_set_lines(0, 0, -1, false, { '{"channel":"C0123","text":"Hello"}' })
      alloy_nvim.run("slack", "chat_postMessage", { body = table.concat(lines(), "\n") }, note("run"))
      R.run_buf, R.run_lines = vim.api.nvim_buf_get_name(0), lines()
      vim.cmd("bwipeout") -- the result buffer
      alloy_nvim.connections("", note("connections"))
      R.conn_buf = vim.api.nvim_buf_get_name(0)
      vim.cmd("close") -- its window: the buffer is wiped with it
      R.settled = settled(20000)
      R.windows = #vim.api.nvim_list_wins()
      alloy_nvim.token() -- left waiting when Neovim quits
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.is_nil(stderr:find("Error", 1, true), stderr)
    assert.are.equal("alloy://run/slack/chat_postMessage", r.run_buf)
    assert.matches("^Alloy: running slack chat_postMessage… %(:AlloyCancel, or closing this buffer, cancels%)$",
      r.run_lines[1])
    assert.are.equal("alloy://connections/" .. uid, r.conn_buf)
    assert.is_true(r.settled)
    assert.are.equal(1, r.windows)
    assert.are.same({ { "run", true, "Alloy: slack chat_postMessage cancelled", "CANCELLED" },
                      { "connections", true, "Alloy: connections of " .. uid .. " cancelled", "CANCELLED" } }, r.got)
    assert.matches("Alloy: slack chat_postMessage cancelled", r.messages, 1, true)
    local seen = sb:requests()
    assert.are.equal(0, count(seen, function(q) return q.method == "POST" end)) -- no execute was sent
  end)

  it("runs 100 calls at once on one loop: every one completes", function()
    local r, code, stderr = nvim([[
      local alloy_nvim = require("alloy_nvim").setup { env_file = ".env.sandbox", register = "" }
      R.tokens, R.failed, R.ticks = {}, {}, 0
      local timer = vim.fn.timer_start(5, function() R.ticks = R.ticks + 1 end, { ["repeat"] = -1 })
      for i = 1, 100 do
        alloy_nvim.token(nil, function(token, msg)
          if token then R.tokens[i] = token else R.failed[#R.failed + 1] = msg end
        end)
      end
      R.pending = alloy_nvim.pending()
      R.settled = settled(30000)
      vim.fn.timer_stop(timer)
      R.count = vim.tbl_count(R.tokens)
      R.tokens = { R.tokens[1], R.tokens[100] }
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.are.equal(100, r.pending)
    assert.is_true(r.settled)
    assert.are.same({}, r.failed)
    assert.are.equal(100, r.count)
    assert.are.equal(uid, alloy.jwt_claims(r.tokens[1]).userId)
    assert.are.equal(uid, alloy.jwt_claims(r.tokens[2]).userId)
    assert.are.equal(100, count(sb:requests(), function(q) return q.path == "/users/" .. uid .. "/token" end))
  end)

  it(":AlloyRun sends the buffer, or a range, as the body; the answer as the connector sent it, in a buffer", function()
    local AS_SENT = '{"z":[1,2],"a":12345678901234567890,"n":1.50}'
    sb:fault { path = "/users_info/execute$", status = 200, body = AS_SENT }
    local r, code, stderr = nvim([[
      require("alloy_nvim").setup { env_file = ".env.sandbox" }
      local input, window = vim.api.nvim_get_current_buf(), vim.api.nvim_get_current_win()
      vim.api.nvim_buf_set_lines(input, 0, -1, false, { '{"channel": "C0123",', ' "text": "Hello"}' })
      vim.cmd("AlloyRun slack chat_postMessage")
      R.waiting = lines()
      R.settled1 = settled()
      R.name, R.whole = vim.api.nvim_buf_get_name(0), lines()
      R.filetype, R.modifiable = vim.bo.filetype, vim.bo.modifiable
      vim.api.nvim_set_current_win(window)
      vim.api.nvim_buf_set_lines(input, 0, -1, false, { "# notes", '{"channel":"C9","text":"From a range"}', "more" })
      vim.cmd("2AlloyRun slack chat_postMessage")
      R.settled2 = settled()
      R.range = lines()
      R.windows = #vim.api.nvim_list_wins() -- the same result buffer and window
      vim.api.nvim_set_current_win(window)
      vim.api.nvim_buf_set_lines(input, 0, -1, false, {})
      vim.cmd("AlloyRun slack conversations_history channel=C0123 limit=2")
      R.settled3 = settled()
      R.query = lines()
      vim.api.nvim_set_current_win(window)
      vim.cmd("AlloyRun slack users_info user=U1")
      settled()
      R.as_sent = lines()
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.matches("^Alloy: running slack chat_postMessage…", r.waiting[1])
    assert.is_true(r.settled1 and r.settled2 and r.settled3)
    assert.are.equal("alloy://run/slack/chat_postMessage", r.name)
    assert.are.equal("json", r.filetype)
    assert.is_false(r.modifiable)
    assert.are.equal(1, #r.whole)
    local whole, range = cjson.decode(r.whole[1]), cjson.decode(r.range[1])
    assert.is_true(whole.success)
    assert.are.same({ channel = "C0123", text = "Hello" }, whole.result.received.requestBody)
    assert.are.same({ channel = "C9", text = "From a range" }, range.result.received.requestBody)
    assert.are.equal(2, r.windows)
    local query = cjson.decode(r.query[1]).result.received
    assert.are.same({ channel = "C0123", limit = "2" }, query.queryParameters)
    assert.are.equal(cjson.null, query.requestBody)
    assert.matches("Alloy: executed slack chat_postMessage with connection " .. conn, r.messages, 1, true)
    local executes = {}
    for _, q in ipairs(sb:requests()) do
      if q.method == "POST" then executes[#executes + 1] = q end
    end
    assert.are.equal(4, #executes)
    assert.are.equal("/connectors/slack/actions/chat_postMessage/execute", executes[1].path)
    assert.are.equal(uid, executes[1].headers["x-alloy-userid"])
    assert.are.equal(conn, cjson.decode(executes[1].body).credentialId)
    assert.are.equal(AS_SENT, r.as_sent[1]) -- the connector's text, not a re-encoding of it
  end)

  it(":AlloyRun reads the action's schema first and names what is missing; nothing is sent", function()
    local r, code, stderr = nvim([[
      require("alloy_nvim").setup { env_file = ".env.sandbox" }
      vim.api.nvim_buf_set_lines(0, 0, -1, false, { '{"channel":"C0123"}' })
      vim.cmd("AlloyRun slack chat_postMessage")
      R.settled = settled()
      R.lines = lines()
      vim.cmd("wincmd p")
      vim.cmd("AlloyRun slack conversations_history")
      settled()
      vim.cmd("wincmd p")
      R.bad = { pcall(vim.cmd, "AlloyRun slack chat_postMessage chanel") }
      vim.api.nvim_buf_set_lines(0, 0, -1, false, { '["not", "an object"]' })
      R.array = { pcall(vim.cmd, "AlloyRun slack chat_postMessage") }
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.is_true(r.settled)
    local want = "Alloy: slack chat_postMessage failed: missing required parameter: body text (nothing was sent)"
    assert.are.same({ want, 'hint: give a body with "text" (the buffer, or a range)' }, r.lines)
    assert.matches(want, r.messages, 1, true)
    assert.matches("missing required parameter: query channel (nothing was sent)\n"
      .. "hint: give channel=… after the action", r.messages, 1, true)
    assert.is_false(r.bad[1])
    assert.matches('Alloy: "chanel" is not name=value', r.bad[2], 1, true)
    assert.is_false(r.array[1])
    assert.matches("Alloy: the body (the buffer) is not a JSON object: not a JSON object", r.array[2], 1, true)
    for _, q in ipairs(sb:requests()) do assert.are.equal("GET", q.method) end
  end)

  it(":AlloyConnections [connector] lists the user's connections in a scratch buffer", function()
    sb:create_credential { userId = uid, connector = "notion", name = "Team wiki" }
    local r, code, stderr = nvim([[
      require("alloy_nvim").setup { env_file = ".env.sandbox" }
      vim.cmd("AlloyConnections")
      settled()
      R.name, R.lines = vim.api.nvim_buf_get_name(0), lines()
      R.buftype, R.modifiable, R.swapfile = vim.bo.buftype, vim.bo.modifiable, vim.bo.swapfile
      R.windows = #vim.api.nvim_list_wins()
      vim.cmd("AlloyConnections") -- again: the same buffer, refreshed, no new window
      settled()
      R.windows2, R.lines2 = #vim.api.nvim_list_wins(), lines()
      vim.cmd("AlloyConnections notion")
      settled()
      R.notion = lines()
      vim.cmd("AlloyConnections slak")
      settled()
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
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
    assert.truthy(text:find(conn, 1, true))
    assert.truthy(text:find("Team wiki", 1, true))
    assert.are.equal("Alloy notion connections for " .. uid .. ": 1", r.notion[1])
    assert.matches("Alloy: slak connections of " .. uid .. ' failed: unknown connector "slak"\n'
      .. "hint: did you mean slack?", r.messages, 1, true)
  end)

  it("words failures as Neovim messages: server text scrubbed, hints naming the plugin's options", function()
    sb:fault { path = "/token$", status = 500, body = { message = "boom \27[31mred\27[0m\nnext \226\128\174end" } }
    sb:fault { path = "/token$", delay = 5 }
    local r, code, stderr = nvim([[
      local alloy_nvim = require("alloy_nvim").setup { env_file = ".env.sandbox", retries = 0 }
      alloy_nvim.token()
      settled()
      alloy_nvim.setup { timeout = 0.5 }
      alloy_nvim.token()
      settled()
      alloy_nvim.setup { timeout = 5, user = "5f0000000000000000000000" }
      alloy_nvim.token()
      settled()
      alloy_nvim.setup { env_file = "no-such.env" }
      R.missing = select(2, alloy_nvim.token())
      alloy_nvim.setup { env_file = ".env.sandbox", timeout = -1 }
      R.bad = select(2, alloy_nvim.token())
    ]], { files = files() })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    local m = r.messages
    assert.matches("Alloy: token for " .. uid .. " failed: HTTP_500: boom.-red.-next %?end", m)
    assert.is_nil(m:find("\27", 1, true))
    assert.matches("hint: the Alloy API failed on its side; try again later (it is not sent again automatically)",
      m, 1, true)
    assert.matches("failed: OPERATION_TIMEDOUT", m, 1, true)
    assert.matches("; setup{ timeout = … } (0.5) sets the per-request timeout in seconds", m, 1, true)
    assert.matches("Alloy: token for 5f0000000000000000000000 failed: HTTP_404", m, 1, true)
    assert.matches("hint: check setup{ user = … } (5f0000000000000000000000): the user must exist for this API key,"
      .. " and setup{ embedded_url = … } (" .. sb.embedded_url .. ", from .env.sandbox) must be the right host",
      m, 1, true)
    assert.matches("Alloy: cannot read the env file: no-such.env", r.missing, 1, true)
    assert.matches("hint: env_file (setup{ env_file = … } or g:alloy_env_file) must name a readable file",
      r.missing, 1, true)
    assert.matches("Alloy: setup option timeout: timeout must be a number of seconds", r.bad, 1, true)
    assert.matches("hint: fix timeout in setup{} (or g:alloy_timeout)", r.bad, 1, true)
    for _, flag in ipairs({ "--", "ALLOY_TIMEOUT", "ALLOY_USER_ID", "ALLOY_EMBEDDED_URL", "ALLOY_RETRIES" }) do
      assert.is_nil(m:find(flag, 1, true), flag)
    end
  end)

  it("runs examples/nvim/README.md's setup as printed: its env_file is read", function()
    local setup = assert(run.read(ROOT .. "/examples/nvim/README.md"):match("\n```lua\n(.-)\n```"))
    local r, code, stderr = nvim(setup:gsub("/path/to/lua%-alloy", ROOT) .. [[

      vim.cmd("AlloyToken")
      settled()
      R.unnamed = vim.fn.getreg('"')
    ]], { files = { [".config/alloy.env"] = env_file(sb, uid) } })
    assert.are.equal(0, code, stderr)
    assert.is_true(r.ok, r.err)
    assert.are.equal(uid, assert(alloy.jwt_claims(r.unnamed), r.messages).userId)
  end)

  it("says where to set the API key when it is missing; the command fails like a Vim command", function()
    local r, code = nvim([[
      R.cmd_ok, R.cmd_err = pcall(vim.cmd, "AlloyToken")
      R.call, R.msg = require("alloy_nvim").token()
    ]], { env = { ALLOY_USER_ID = "someone", ALLOY_BASE_URL = sb.url } })
    assert.are.equal(0, code)
    assert.is_true(r.ok, r.err)
    assert.is_false(r.cmd_ok)
    assert.matches("Alloy: ALLOY_API_KEY is not set", r.cmd_err, 1, true)
    assert.is_nil(r.call)
    assert.matches("ALLOY_API_KEY is not set\nhint: .*export ALLOY_API_KEY=.*setup{ env_file = … }", r.msg)
    assert.are.equal(0, #sb:requests())
  end)

  it("turns a Lua error in the driver into a non-zero exit (the harness catches what nvim does not)", function()
    local r, code = nvim([[ error("boom") ]])
    assert.are.equal(3, code)
    assert.is_false(r.ok)
    assert.matches("boom", r.err, 1, true)
  end)
end)

-- The try-it line of docs/hosts.md, run as printed right after `make sandbox`: from a
-- directory of links to the checkout (readme.checkout(), where the sandbox writes
-- .env.sandbox), a relative runtimepath, not headless (Neovim draws on a pseudo-terminal from
-- util-linux `script`). The spec types what a user would: it writes register " to a file, then
-- :qa!.
describe("examples/nvim as docs/hosts.md prints it", function()
  local TRY = readme.command(
    [[nvim --clean --cmd 'set rtp+=examples/nvim' --cmd 'let g:alloy_env_file = ".env.sandbox"' -c AlloyToken]])

  it("make sandbox, then make LUA=luajit and the nvim line: the token lands in register \"", function()
    local dir = readme.checkout()
    local env = {}
    if run.lua ~= "lua5.4" and not run.lua:find("/", 1, true) then env.LUA = run.lua end
    local sandbox = readme.background("make sandbox", { cwd = dir, home = dir, env = env })
    local ready = run.wait_for(function() return sandbox:stderr():find(") stops the sandbox", 1, true) end, 30)
    local uid = sandbox:stderr():match("user sandbox%-user %((%x+)%)")
    local _, err, code = readme.run("make LUA=luajit", { cwd = dir })
    local home = run.tmpdir()
    local vars = { HOME = home, XDG_CONFIG_HOME = home .. "/config", XDG_DATA_HOME = home .. "/data",
                   XDG_STATE_HOME = home .. "/state", XDG_CACHE_HOME = home .. "/cache", TERM = "xterm" }
    local lines = {}
    for k, v in pairs(vars) do lines[#lines + 1] = k .. "=" .. run.quote(v) end
    run.write(home .. "/env.sh", table.concat(lines, "\n") .. "\n", "600")
    local inner = "set -a; . " .. run.quote(home .. "/env.sh") .. "; set +a; exec timeout 60 script -qefc "
      .. run.quote(TRY) .. " /dev/null"
    local out = home .. "/screen.txt"
    local keys = assert(io.popen("cd " .. run.quote(dir) .. " && env -i PATH=" .. run.quote(os.getenv("PATH"))
      .. " sh -c " .. run.quote(inner) .. " >" .. run.quote(out) .. " 2>&1", "w"))
    local shown = ready and run.wait_for(function()
      local screen = run.read(out)
      return (screen:find("Alloy: token for " .. tostring(uid) .. " in register", 1, true)
        or screen:find("failed", 1, true) or screen:find("E%d+:")) and screen
    end, 30)
    keys:write("\27:call writefile([getreg('\"')], '" .. home .. "/register.txt')\r:qa!\r")
    keys:flush()
    keys:close()
    local screen, register = run.read(out), run.read(home .. "/register.txt")
    local key = run.read(dir .. "/.env.sandbox"):match("ALLOY_API_KEY=(%S+)")
    sandbox:stop()
    run.rmdir(home)
    run.rmdir(dir)

    assert.truthy(ready, "make sandbox did not start:\n" .. sandbox:stderr())
    assert.are.equal(0, code, err)
    assert.truthy(shown, "no message from :AlloyToken on the screen:\n" .. screen)
    assert.truthy(screen:find("Alloy: token for " .. uid .. " in register", 1, true), screen)
    local token = register:gsub("\n$", "")
    assert.are.equal(uid, assert(alloy.jwt_claims(token), "register \" holds no JWT: " .. register).userId)
    assert.is_nil(screen:find(token, 1, true)) -- the token is not shown
    assert.is_nil(key and screen:find(key, 1, true))
  end)
end)
