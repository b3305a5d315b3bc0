-- The API key must appear in no output of any script, in any failure mode, with or
-- without --verbose: not whole, and not any 8-character piece of it in any form a server may
-- echo it in.  This spec drives every script through every failure mode itself, then also
-- checks every script run recorded so far by the rest of the suite (for the whole key).
local Sandbox = require "sandbox"
local run = require "run"

-- The forms a server may echo a secret in: as is, other case, percent-encoded (once, twice),
-- JSON-escaped.
local function forms(key)
  local function each(fmt) return (key:gsub("[^%w]", function(c) return fmt:format(c:byte()) end)) end
  return { key, key:upper(), key:lower(), each("%%%02X"), each("%%%02x"), (key:gsub("/", "\\/")), each("\\u%04x"),
           each("%%25%02X") }
end

-- The key in base64 (LuaSocket's mime, standard and URL-safe), from each of the three byte
-- offsets a piece can start at, cut to whole 3-byte groups: 11 characters carry 8 bytes.
local function base64_forms(key)
  local out = {}
  for offset = 0, 2 do
    local part = key:sub(offset + 1)
    local b64 = require("mime").b64(part:sub(1, #part - #part % 3))
    out[#out + 1] = b64
    out[#out + 1] = (b64:gsub("+", "-"):gsub("/", "_"))
  end
  return out
end

-- The first 8-character piece of any form of key found in text (letter case ignored), or an
-- 11-character piece of a base64 form (exact), or nil.
local function piece_in(text, key)
  local lower = text:lower()
  for _, form in ipairs(forms(key)) do
    for i = 1, #form - 7 do
      local w = form:sub(i, i + 7):lower()
      if lower:find(w, 1, true) then return w end
    end
  end
  for _, form in ipairs(base64_forms(key)) do
    for i = 1, #form - 10 do
      local w = form:sub(i, i + 10)
      if text:find(w, 1, true) then return w end
    end
  end
end

describe("the API key never appears in script output #scripts", function()
  teardown(run.check_scripts_only)
  local sb, dir

  setup(function()
    sb = Sandbox.start()
    dir = run.tmpdir()
  end)
  teardown(function()
    if sb then sb:stop() end
    run.rmdir(dir)
  end)

  local WRONG_KEY = "wrongKEY_abcdefghijklmnopqrstuvw"
  -- a connector's API key, given on stdin: never printed either
  local FIELD_SECRET = "acuity-SECRET-9f8e7d6c5b4a"

  -- Every script, with arguments that reach the API (listening ones wait briefly).
  local function scripts()
    local port = run.closed_port()
    local redirect = "http://127.0.0.1:" .. port .. "/oauth/callback"
    return {
      { "get_jwt_token", {} },
      { "get_jwt_token", { "--json" } },
      { "get_jwt_token", { "--probe" } },
      { "list_connections", {} },
      { "list_connections", { "--json", "--connector", "notion" } },
      { "initiate_oauth", { "--connector", "notion", "--redirect-uri", redirect, "--timeout", "0.1" } },
      { "initiate_oauth", { "--connector", "notion", "--redirect-uri", redirect, "--no-listen", "--json" } },
      { "test_oauth", { "--redirect-uri", redirect, "--timeout", "0.1" } },
      { "list_connectors", {}, no_user = true },
      { "list_connectors", { "--json", "--search", "zen" }, no_user = true },
      { "users", { "list" }, no_user = true },
      { "delete_connection", { "--yes", "0123456789abcdef01234567" } },
      { "alloy_main", { "connections" } },
      { "initiate_oauth", { "--connector", "acuityScheduling", "--field", "userId=12345678" },
        stdin = FIELD_SECRET .. "\n", secrets = { FIELD_SECRET } },
      { "list_actions", { "slack" }, no_user = true },
      { "describe_action", { "slack", "chat_postMessage", "--json" }, no_user = true },
      -- with a slack connection of the user as CONNECTION_ID; the user is optional there
      { "run_action", { "slack", "conversations_history", "--query", "channel=C1" }, connection = "slack",
        no_user = true },
      { "alloy_main", { "trigger", "Order Created", "--data", "{}" } },
      -- an API request, then a PUT to the storage host (without a user: the API key's own files)
      { "alloy_main", { "upload", "hello.txt" }, no_user = true, file = { "hello.txt", "hello world\n" } },
    }
  end

  -- name -> function(uid) returning env overrides and extra args, after arranging faults
  local MODES = {
    { "success", function() return {} end, ok = true },
    { "401 wrong key", function() return { ALLOY_API_KEY = WRONG_KEY } end },
    { "404 unknown user", function() return {}, { "--user", "5f0000000000000000000000" } end },
    { "400 invalid id", function()
      sb:fault{ path = ".", status = 400, times = 50,
                body = { message = "userId must be a valid ID", error = { message = "userId must be a valid ID" } } }
      return {}
    end },
    { "500", function() sb:fault{ path = ".", status = 500, times = 50 }; return {} end },
    { "unreachable", function()
      local url = "http://127.0.0.1:" .. run.closed_port()
      return { ALLOY_BASE_URL = url, ALLOY_EMBEDDED_URL = url }
    end },
    { "timeout", function()
      sb:fault{ path = ".", delay = 1, times = 2 }
      return { ALLOY_TIMEOUT = "0.05" }
    end, partial = true },
    { "malformed JSON", function()
      sb:fault{ path = ".", status = 200, body = "{not json", times = 50 }
      return {}
    end },
    { "missing user", function() return { ALLOY_USER_ID = false } end, no_user = true },
    { "missing key", function() return { ALLOY_API_KEY = false } end },
    { "key in a world-readable .env", function()
      run.write(dir .. "/.env", "ALLOY_API_KEY=" .. sb.api_key .. "\n", "644")
      return { ALLOY_API_KEY = false }
    end, ok = true },
  }

  local runs = {}

  for _, mode in ipairs(MODES) do
    for _, verbose in ipairs({ false, true }) do
      it(mode[1] .. (verbose and " --verbose" or ""), function()
        for _, s in ipairs(scripts()) do
          sb:reset()
          os.remove(dir .. "/.env")
          local uid = sb:create_user{ username = "secret-user" }
          if s.file then run.write(dir .. "/" .. s.file[1], s.file[2]) end
          local extra_env, extra_args = mode[2]()
          if s.connection then
            extra_env = extra_env or {}
            extra_env.CONNECTION_ID = sb:create_credential { userId = uid, connector = s.connection }.credentialId
          end
          local args = {}
          for _, a in ipairs(s[2]) do args[#args + 1] = a end
          for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
          if verbose then args[#args + 1] = "--verbose" end
          local r = run.script(s[1], args, { env = run.env(sb, uid, extra_env), cwd = dir, stdin = s.stdin,
                                             secrets = s.secrets })
          runs[#runs + 1] = r
          local label = s[1] .. " " .. table.concat(args, " ") .. " [" .. mode[1] .. "]"
          local out = r.stdout .. "\n" .. r.stderr
          assert.is_nil(piece_in(out, sb.api_key), "a piece of the key in the output of " .. label)
          assert.is_nil(piece_in(out, WRONG_KEY), "a piece of the wrong key in the output of " .. label)
          assert.is_nil(piece_in(out, FIELD_SECRET), "a piece of the connector secret in the output of " .. label)
          -- (--probe recovers from a fault on its first attempts: its exit code is not the point)
          -- (list_connectors and users need no user id)
          if not mode.ok and not (mode.partial and s[2][1] == "--probe") and not (s.no_user and mode.no_user) then
            assert.is_true(r.code == 1 or r.code == 2, label .. " exited " .. tostring(r.code) .. "\n" .. r.stderr)
            assert.matches("error: ", r.stderr, 1, true)
          end
          if verbose and mode.ok then
            -- the HTTP exchange really was shown (so the redaction was exercised)
            assert.is_truthy(r.stderr:find("\n> [A-Z]+ /"), "no request shown for " .. label)
            assert.is_truthy(r.stderr:find("[Aa]uthorization: "), "no Authorization line for " .. label)
          end
        end
      end)
    end
  end

  it("covered every script in failing and verbose runs", function()
    local seen = {}
    for _, r in ipairs(run.history) do
      if r.code ~= 0 then seen[r.name] = true end
    end
    for _, name in ipairs({ "get_jwt_token", "list_connections", "initiate_oauth", "test_oauth", "list_connectors",
                            "users", "delete_connection", "alloy_main", "list_actions", "describe_action",
                            "run_action" }) do
      assert.is_true(seen[name], name .. " never failed in this suite")
    end
    assert.is_true(#runs >= #MODES * 2 * 8)
  end)

  it("no script run recorded anywhere in the suite printed its key", function()
    local bad = run.leaks()
    local names = {}
    for _, h in ipairs(bad) do names[#names + 1] = h.name .. " " .. table.concat(h.args or {}, " ") end
    assert.same({}, names)
    assert.is_true(#run.history > 0)
  end)
end)

-- A hostile server echoes the key back in the forms a server plausibly uses (as sent, upper
-- case, percent-encoded, JSON-escaped), in bodies and headers, at and across the points where
-- an excerpt is cut. No output may hold any 8-character piece of the key in any of them.
describe("the API key never appears, even when a hostile server echoes it", function()
  local Nginx = require "nginx"
  local KEY = "sk/live+" .. Nginx.random_key(24) .. "=/x" -- '/', '+' and '=' change when encoded
  local sb, uid

  setup(function() sb = Sandbox.start { api_key = KEY } end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "echo-user" }
  end)

  it("the check itself finds a piece in every form", function()
    for _, form in ipairs(forms(KEY)) do
      assert.is_string(piece_in("x" .. form:sub(5, 12) .. "y", KEY), form)
    end
    for _, form in ipairs(base64_forms(KEY)) do
      assert.is_string(piece_in("x" .. form:sub(5, 15) .. "y", KEY), form)
    end
    assert.is_nil(piece_in("HTTP_401: [REDACTED] (GET /users/x/token)", KEY))
  end)

  local P = { "{key}", "{key_upper}", "{key_pct}", "{key_pct_lower}", "{key_json}", "{key_json_u}", "{key_b64}",
              "{key_b64url}", "{key_basic}" }
  local function pad(n) return string.rep("x", n) end
  -- name, fault: each placeholder in turn, in faults that reach every failure path
  local FAULTS = {
    { "401 JSON message", function(p) return { status = 401, body = '{"message":"Invalid key ' .. p .. '"}' } end },
    { "401 text body, key across the 160-byte cut", function(p)
      return { status = 401, body = pad(150) .. p .. " rejected" } end },
    { "401 text body, key right at the cut", function(p) return { status = 401, body = pad(158) .. p } end },
    { "500 error.message, key across the message cap", function(p)
      return { status = 500, body = '{"error":{"message":"' .. pad(300) .. p .. '"}}' } end },
    { "200 not JSON, key across the excerpt cut", function(p)
      return { status = 200, body = "<html>" .. pad(40) .. p .. "</html>" } end },
    { "200 token that is not a JWT", function(p) return { status = 200, body = '{"token":"' .. p .. '"}' } end,
      token = true }, -- for the token commands only: to the others it is a fine object
    { "302 Location with the key", function(p)
      return { status = 302, headers = { Location = "https://evil.example/?k=" .. p }, body = "" } end },
    { "400 header and body", function(p)
      return { status = 400, headers = { ["X-Echo"] = p }, body = '{"message":"bad ' .. p .. '"}' } end },
  }
  local SCRIPTS = {
    { "get_jwt_token", {}, token = true }, { "get_jwt_token", { "--json" }, token = true },
    { "list_connections", { "--json" } }, { "users", { "list" } }, { "alloy_main", { "token" }, token = true },
    { "list_actions", { "slack" } },
    { "describe_action", { "slack", "chat_postMessage", "--json" } },
  }

  for _, fault in ipairs(FAULTS) do
    it(fault[1] .. ": no piece of the key in any output, with or without --verbose or --json", function()
      local runs = 0
      for i, script in ipairs(SCRIPTS) do
        local applies = script.token or not fault.token
        for _, verbose in ipairs(applies and { false, true } or {}) do
          local f = fault[2](P[(i + (verbose and 1 or 0)) % #P + 1])
          f.path, f.echo, f.times = ".", true, 10
          sb:reset()
          uid = sb:create_user { username = "echo-user" }
          sb:fault(f)
          local args = {}
          for _, a in ipairs(script[2]) do args[#args + 1] = a end
          if verbose then args[#args + 1] = "--verbose" end
          local r = run.script(script[1], args, { env = run.env(sb, uid) })
          runs = runs + 1
          local label = script[1] .. " " .. table.concat(args, " ") .. " [" .. fault[1] .. "]"
          assert.is_true(r.code == 1 or r.code == 2, label .. " exited " .. tostring(r.code) .. "\n" .. r.stderr)
          assert.matches("error: ", r.stderr, 1, true)
          local leaked = piece_in(r.stdout .. "\n" .. r.stderr, KEY)
          assert.is_nil(leaked, label .. " printed " .. tostring(leaked) .. ":\n" .. r.stdout .. r.stderr)
          assert.is_true(#sb:requests() > 0, label .. ": the hostile server was never asked")
          if verbose then assert.is_truthy(r.stderr:find("\n< ", 1, true), label .. ": no response headers shown") end
        end
      end
      assert.is_true(runs >= 6)
    end)
  end

  -- Success answers are data too: a name, a message or an action's result that holds the key
  -- (in any form) is printed without it, on stdout and stderr, as a table or as JSON.
  it("200 answers that echo the key: no piece of it in what any command prints", function()
    local ID = "0123456789abcdef01234567"
    local function body(p)
      local item = ('{"credentialId":"%s","type":"slack-oauth2","name":"%s","id":"slack","userId":"%s",'
        .. '"username":"%s","actions":[{"id":"list","displayName":"%s","httpMethod":"get"}]}'):format(ID, p, ID, p, p)
      return ('{"action":{"id":"chat_postMessage","displayName":"%s","description":"%s","httpMethod":"post",'
        .. '"parameters":[]},"data":[%s],"result":"%s","message":"%s"}'):format(p, p, item, p, p)
    end
    local COMMANDS = {
      { "list_connections", {} }, { "list_connections", { "--json" } }, { "users", { "list" } },
      { "list_connectors", {} }, { "list_actions", { "slack" } }, { "list_actions", { "slack", "--json" } },
      { "describe_action", { "slack", "chat_postMessage" } },
      { "describe_action", { "slack", "chat_postMessage", "--json" } },
      { "run_action", { "slack", "chat_postMessage", "--body", "{}", "--credential", ID } },
    }
    local shown = 0
    for i, command in ipairs(COMMANDS) do
      for j, p in ipairs(P) do
        if (i + j) % 2 == 0 then -- half the pairs, every form and every command still covered
          sb:reset()
          uid = sb:create_user { username = "echo-user" }
          sb:fault { path = ".", echo = true, status = 200, times = 10, body = body(p) }
          local r = run.script(command[1], command[2], { env = run.env(sb, uid) })
          local label = command[1] .. " " .. table.concat(command[2], " ") .. " [" .. p .. "]"
          local leaked = piece_in(r.stdout .. "\n" .. r.stderr, KEY)
          assert.is_nil(leaked, label .. " printed " .. tostring(leaked) .. ":\n" .. r.stdout .. r.stderr)
          if r.code == 0 and r.stdout:find("[REDACTED]", 1, true) then shown = shown + 1 end
        end
      end
    end
    assert.is_true(shown >= #COMMANDS, "the echoed key reached stdout (redacted) in only " .. shown .. " runs")
  end)

  it("every form of the key, in every position of a message, from the Lua API", function()
    local c = sb:client { retries = 0 }
    for _, p in ipairs(P) do
      for _, n in ipairs { 0, 1, 7, 100, 150, 155, 159, 160, 161, 300, 350, 380, 395 } do
        sb:fault { path = ".", echo = true, status = 401, body = pad(n) .. p .. pad(20) }
        sb:fault { path = ".", echo = true, status = 401, body = '{"message":"' .. pad(n) .. p .. '"}' }
        sb:fault { path = ".", echo = true, status = 200, body = "!" .. pad(n % 60) .. p }
        for _ = 1, 3 do
          local token, msg = c:user_token(uid)
          assert.is_nil(token)
          assert.is_nil(piece_in(msg, KEY), p .. " at " .. n .. ": " .. msg)
          assert.is_true(#msg <= 400)
        end
      end
    end
  end)

  it("client:add_secret: a value masked as the key is, in messages and in debug lines", function()
    local secret, short = "conn-S3cret-v4lue-99", "pw12"
    sb:fault { path = "^/users$", status = 403, body = { message = secret .. " said " .. short },
               headers = { ["X-Echo"] = "conn%2DS3cret%2Dv4lue%2D99 " .. short .. " " .. secret:upper() } }
    local out, err, code = run.lua_code(([[
      local alloy = require "alloy"
      local c = alloy.new { api_key = %q, base_url = %q, retries = 0, debug = true }
      c:add_secret(%q)
      c:add_secret(%q)
      c:add_secret(%q) -- again: nothing changes
      local _, msg = c:request { path = "/users" }
      print(msg)
      print(pcall(c.add_secret, c, ""))
      print(pcall(c.add_secret, c, "a\0b"))
    ]]):format(KEY, sb.url, secret, short, secret))
    assert.equals(0, code, err)
    -- what the server echoed: in a header, in the message, percent-encoded
    assert.is_nil((out .. err):find(secret, 1, true), out .. err)
    assert.is_nil((out .. err):find("S3cret-v", 1, true))
    assert.is_nil((out .. err):find("conn%2DS3cret", 1, true))
    assert.is_nil((out .. err):find(short, 1, true))
    assert.matches("< X-Echo: [REDACTED] [REDACTED] [REDACTED]\n", err, 1, true)
    assert.equals("HTTP_403: [REDACTED] said [REDACTED] (GET /users)", run.lines(out)[1])
    assert.matches("\nfalse\t[^\n]*a secret is a non%-empty string without NUL%)\nfalse\t", out)
  end)

  it("client:add_secret: a value where a long message is cut leaves no piece of it", function()
    local secret = "Qz7Wv9Kx3Mp2Lr8T"
    -- the server's message: n filler bytes, then the secret, for n across the cut at 400 bytes
    for n = 330, 400 do
      sb:fault { path = "^/users/echo$", status = 400, body = { message = ("x"):rep(n) .. secret } }
    end
    local out, err, code = run.lua_code(([[
      local alloy = require "alloy"
      local c = alloy.new { api_key = %q, base_url = %q, retries = 0 }
      c:add_secret(%q)
      for _ = 330, 400 do
        local _, msg = c:request { path = "/users/echo" }
        print(msg)
      end
    ]]):format(KEY, sb.url, secret))
    assert.equals(0, code, err)
    local lines = run.lines(out)
    assert.equals(71, #lines)
    for _, msg in ipairs(lines) do
      assert.is_true(#msg <= 400)
      assert.is_nil(msg:find("Qz7W", 1, true), msg)
    end
  end)
end)
