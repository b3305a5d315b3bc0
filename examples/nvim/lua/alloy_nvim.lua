-- alloy_nvim: Alloy from inside Neovim (0.7+, LuaJIT), on top of alloy.so and its library
-- modules. No command blocks the editor: each request is started on vim.loop (client:start
-- with alloy.uv) and its answer handled on the main loop (alloy_nvim/calls.lua).
--
--   :AlloyToken [user]                a fresh JWT for the user into register " (and register)
--   :AlloyConnections [connector]     the user's connections in a scratch buffer
--   :[range]AlloyRun CONNECTOR ACTION [name=value ...]
--                                     execute an action with the buffer (or the range) as its
--                                     JSON body; the answer in a scratch buffer
--   :AlloyCancel                      cancel every call in progress
--
-- Closing the buffer a call writes into cancels it too. Options (setup{} or g:alloy_<name>):
-- README.md. From Lua, M.token / M.connections / M.run take a function last, called once with
-- the result or nil, message, code ("CANCELLED" when cancelled); each returns the call
-- (M.cancel(call) cancels it) or nil and the message when nothing was started.
local calls = require "alloy_nvim.calls"
local settings = require "alloy_nvim.settings"

local M = {}

local say, fail, line = settings.say, settings.fail, settings.line
local LEVEL = vim.log.levels

-- A line on the command line while a call is out (not kept in :messages).
local function progress(text)
  vim.api.nvim_echo({ { text .. "… (:AlloyCancel cancels)", "MoreMsg" } }, false, {})
end

-- The scratch buffer `name` in a window (the same buffer when it exists), made current.
local function open(name)
  local buf
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(b) == name then buf = b end
  end
  if not buf then
    vim.cmd("new")
    buf = vim.api.nvim_get_current_buf()
    vim.api.nvim_buf_set_name(buf, name)
  else
    local win = vim.fn.bufwinid(buf)
    if win ~= -1 then vim.api.nvim_set_current_win(win) else vim.cmd("sbuffer " .. buf) end
  end
  for k, v in pairs({ buftype = "nofile", bufhidden = "wipe", swapfile = false }) do
    vim.api.nvim_buf_set_option(buf, k, v)
  end
  return buf
end

-- Replaces the text of buf (when it is still there); it stays read-only.
local function fill(buf, lines, filetype)
  if not (buf and vim.api.nvim_buf_is_loaded(buf)) then return end
  vim.api.nvim_buf_set_option(buf, "modifiable", true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_buf_set_option(buf, "modifiable", false)
  vim.api.nvim_buf_set_option(buf, "modified", false)
  vim.api.nvim_buf_set_option(buf, "filetype", filetype or "alloy")
end

-- The `done` of a call about `what` ("token for 6b15…"): a cancelled call says so (a
-- warning, not an error), a failure is shown with its hint (and written into the call's
-- buffer), a result goes to success(value), whose values on_done gets.
local function settle(what, view, on_done, success)
  on_done = on_done or function() end
  return function(call, value, err)
    if call.cancelled or (value == nil and err and err.code == "CANCELLED") then
      local text = "Alloy: " .. what .. " cancelled"
      if not call.superseded then
        say(text, LEVEL.WARN)
        fill(call.buf, { text })
      end
      return on_done(nil, text, "CANCELLED")
    end
    if value == nil then
      local hint = settings.hint(err, view)
      local _, text = fail(what .. " failed: " .. tostring(err), hint)
      fill(call.buf, vim.split(text, "\n", { plain = true }))
      return on_done(nil, text, err.code)
    end
    return on_done(success(value))
  end
end

local function arg_of(c) return vim.trim(c.args or "") end

-- 'register "', 'registers " and +'
local function registers_text(registers)
  return (#registers == 1 and "register " or "registers ") .. table.concat(registers, " and ")
end

-- "expires 16:56 (in 59m)", local time (the date too when it is not within the day).
local function expiry(exp)
  local left = exp - os.time()
  local at = os.date(math.abs(left) < 20 * 3600 and "%H:%M" or "%Y-%m-%d %H:%M", exp)
  return ("%s %s (%s)"):format(left < 0 and "expired" or "expires", at, require("alloy.timefmt").relative(left))
end

-- on_done(token, {user_id, exp, expires_at, registers}) | on_done(nil, message, code)
function M.token(user, on_done)
  local s, msg = settings.session({ user = true }, user)
  if not s then return nil, msg end
  local uid = s.cfg.user_id
  local what = "token for " .. line(uid)
  progress("Alloy: " .. what)
  return calls.start {
    client = s.client,
    run = function(client)
      local token, emsg, code, res = client:user_token(uid)
      if not token then return nil, require("alloy.failure").api(emsg, code, res, "user_token") end
      return token
    end,
    done = settle(what, s.view { user_arg = user ~= nil and user ~= "" }, on_done, function(token)
      local registers, extra = { '"' }, settings.get("register")
      if extra == nil and vim.fn.has("clipboard") == 1 then extra = "+" end
      if extra and extra ~= "" and extra ~= '"' then registers[#registers + 1] = extra end
      for _, r in ipairs(registers) do vim.fn.setreg(r, token) end
      local claims = s.alloy.jwt_claims(token)
      local exp = claims and tonumber(claims.exp)
      say(("Alloy: %s in %s, %s"):format(what, registers_text(registers), exp and expiry(exp) or "no expiry in it"))
      return token, { user_id = uid, exp = exp, expires_at = exp and require("alloy.timefmt").iso(exp),
                      registers = registers }
    end),
  }
end

-- on_done(list, buf) | on_done(nil, message, code); connector: only its connections.
function M.connections(connector, on_done)
  local lib, lerr = settings.library()
  if not lib then return nil, lerr end
  connector = connector ~= "" and connector or nil
  if connector and not require("alloy.ids").name(connector) then
    return fail(("%q is not a connector id (letters, digits, - _ . only)"):format(line(connector)))
  end
  local s, msg = settings.session({ user = true })
  if not s then return nil, msg end
  local uid = s.cfg.user_id
  local kind = connector and (connector .. " connections") or "connections"
  local what = ("%s of %s"):format(kind, line(uid))
  local buf = open("alloy://connections/" .. uid .. (connector and ("/" .. connector) or ""))
  fill(buf, { ("Alloy: listing the %s… (:AlloyCancel, or closing this buffer, cancels)"):format(what) })
  return calls.start {
    client = s.client, buf = buf,
    run = function(client)
      local credentials, connectors = require "alloy.credentials", require "alloy.connectors"
      local all, err = credentials.list(client, uid)
      if not all then return nil, err end
      local list = credentials.for_connector(all, connector)
      if connector and #list == 0 then -- a connector the API does not know: "did you mean"
        local known = connectors.list(client) or {}
        local found = false
        for _, c in ipairs(known) do found = found or c.id:lower() == connector:lower() end
        if #known > 0 and not found then return nil, connectors.unknown(client, connector, known) end
      end
      -- oldest first, as `alloy connections` lists them
      table.sort(list, function(a, b) return (a.createdAt or "") < (b.createdAt or "") end)
      return { list = list, total = #all }
    end,
    done = settle(what, s.view { connector = connector }, on_done, function(r)
      local lines = { ("Alloy %s for %s: %d"):format(kind, line(uid), #r.list) }
      if #r.list == 0 then
        lines[#lines + 1] = ("(none%s: connect one with `alloy connect %s`)"):format(
          connector and r.total > 0 and (", %d of other connectors"):format(r.total) or "", connector or "notion")
      else
        lines[#lines + 1] = ""
        for l in require("alloy.credentials").table(r.list):gmatch("[^\n]+") do lines[#lines + 1] = l end
      end
      fill(buf, lines)
      return r.list, buf
    end),
  }
end

-- "name=value" arguments -> { {name, value}, ... } | nil, failure
local function name_values(list)
  local out = {}
  for _, kv in ipairs(list) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not (k and require("alloy.ids").name(k)) or v:find("[\r\n%z]") then
      return nil, ("%q is not name=value (a query or path parameter of the action)"):format(line(kv))
    end
    out[#out + 1] = { k, v }
  end
  return out
end

-- The missing parameters, and how to give each here.
local function missing_failure(missing)
  local names, fields, args = {}, {}, {}
  for i, p in ipairs(missing) do
    names[i] = p.where .. " " .. p.name
    if p.where == "body" then fields[#fields + 1] = ('"%s"'):format(p.name) else args[#args + 1] = p.name .. "=…" end
  end
  local how = {}
  if #fields > 0 then how[1] = ("a body with %s (the buffer, or a range)"):format(table.concat(fields, " and ")) end
  if #args > 0 then how[#how + 1] = table.concat(args, " ") .. " after the action" end
  return require("alloy.failure").usage(("missing required parameter%s: %s (nothing was sent)"):format(
    #missing == 1 and "" or "s", table.concat(names, ", ")), "give " .. table.concat(how, ", and "))
end

-- input: { body = JSON text (blank: none), body_from = "lines 2-4" ..., params = {"k=v", ...} }
-- on_done(text, buf, res) | on_done(nil, message, code): text is the connector's answer as it
-- sent it, on one line (JSON numbers and key order intact; :%!jq . makes it pretty).
function M.run(connector, action, input, on_done)
  local lib, lerr = settings.library()
  if not lib then return nil, lerr end
  local ids, json = require "alloy.ids", require "alloy.json"
  input = input or {}
  if not (connector and action) then
    return fail("give the connector and the action", "usage: :[range]AlloyRun CONNECTOR ACTION [name=value ...]")
  end
  for _, v in ipairs({ { "connector", connector }, { "action", action } }) do
    local ok, err = ids.check_name(v[1], v[2])
    if not ok then return fail(err.message, "usage: :[range]AlloyRun CONNECTOR ACTION [name=value ...]") end
  end
  local params, perr = name_values(input.params or {})
  if not params then return fail(perr, "name=value, once per parameter; the body comes from the buffer") end
  local body
  if input.body and input.body:find("%S") then
    local v, err = json.decode(input.body)
    if type(v) ~= "table" or v[1] ~= nil or v == json.null then err = err or "not a JSON object" end
    if err then
      return fail(("the body (%s) is not a JSON object: %s"):format(input.body_from or "given", err),
        [[the buffer, or a range (:'<,'>AlloyRun ...), holds {"name": "value", ...}]])
    end
    body = v
  end
  local s, msg = settings.session({ connection = true })
  if not s then return nil, msg end
  local cfg = s.cfg
  if not ids.object_id(cfg.connection_id) then
    return fail(("%q is not a connection id (24 hex digits)"):format(line(cfg.connection_id)),
      "check setup{ connection_id = … } (:AlloyConnections lists the user's)")
  end
  local what = ("%s %s"):format(connector, action)
  local buf = open(("alloy://run/%s/%s"):format(connector, action))
  fill(buf, { ("Alloy: running %s… (:AlloyCancel, or closing this buffer, cancels)"):format(what) })
  return calls.start {
    client = s.client, buf = buf,
    run = function(client)
      local actions = require "alloy.actions"
      local schema, err = actions.schema(client, connector, action)
      if not schema then return nil, err end
      local all = actions.params(schema)
      local given = { body = body }
      for _, kv in ipairs(params) do -- each goes where the schema puts it
        local where
        for _, p in ipairs(all) do
          if p.name == kv[1] and (p.where == "query" or p.where == "path") then where = p.where end
        end
        if not where then
          return nil, require("alloy.failure").usage(("%s takes no query or path parameter %q (nothing was sent)")
            :format(what, kv[1]), "`alloy action " .. what .. "` lists what it takes")
        end
        given[where] = given[where] or {}
        given[where][kv[1]] = kv[2]
      end
      local missing = actions.missing(all, given)
      if #missing > 0 then return nil, missing_failure(missing) end
      local v, emsg, code, res = client:execute_action(connector, action, { credentialId = cfg.connection_id,
        requestBody = body, queryParameters = given.query, pathParams = given.path },
        cfg.user_id and { headers = { ["x-alloy-userid"] = cfg.user_id } } or nil)
      if v == nil and type(emsg) == "string" then
        return nil, require("alloy.failure").api(emsg, code, res, "execute_action")
      end
      return { value = v, res = emsg }
    end,
    done = settle(what, s.view { connector = connector, action = action }, on_done, function(r)
      local res = r.res
      local text = type(res) == "table" and res.json ~= nil and type(res.body) == "string" and json.as_sent(res.body)
        or json.encode(r.value == nil and json.null or r.value)
      fill(buf, { text }, "json")
      say(("Alloy: executed %s with connection %s"):format(what, cfg.connection_id))
      return text, buf, res
    end),
  }
end

-- Cancels `call`, or every call in progress. -> how many were cancelled
function M.cancel(call)
  if call then return calls.cancel(call) and 1 or 0 end
  return calls.cancel_all()
end

-- Calls in progress (a cancelled one counts until its callback has run).
function M.pending() return calls.count() end

function M.setup(o)
  settings.set(o)
  return M
end

-- :AlloyRun's body: the range, else the whole buffer.
local function run_command(c)
  local words = vim.split(arg_of(c), "%s+")
  local buf_name = vim.fn.bufname()
  buf_name = buf_name ~= "" and buf_name or "the buffer"
  local from = c.range == 0 and buf_name or c.line1 == c.line2 and ("line %d of %s"):format(c.line1, buf_name)
    or ("lines %d-%d of %s"):format(c.line1, c.line2, buf_name)
  local body = table.concat(vim.api.nvim_buf_get_lines(0, c.line1 - 1, c.line2, false), "\n")
  M.run(words[1], words[2], { body = body, body_from = from, params = { unpack(words, 3) } })
end

-- The user commands (plugin/alloy_nvim.lua calls this; running it again redefines them).
function M.commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("AlloyToken", function(c) M.token(arg_of(c)) end,
    { nargs = "?", desc = "Alloy: a fresh JWT for the user into a register" })
  cmd("AlloyConnections", function(c) M.connections(arg_of(c)) end,
    { nargs = "?", desc = "Alloy: the user's connections in a scratch buffer" })
  cmd("AlloyRun", run_command, { nargs = "+", range = "%",
    desc = "Alloy: execute CONNECTOR ACTION with the buffer (or the range) as its JSON body" })
  cmd("AlloyCancel", function()
    local n = M.cancel()
    say(n == 0 and "Alloy: no call in progress" or ("Alloy: cancelled %d call%s"):format(n, n == 1 and "" or "s"))
  end, { nargs = 0, desc = "Alloy: cancel every call in progress" })
  vim.api.nvim_create_autocmd("VimLeavePre", {
    group = vim.api.nvim_create_augroup("alloy_nvim", { clear = true }), callback = function() calls.close_all() end,
  })
end

return M
