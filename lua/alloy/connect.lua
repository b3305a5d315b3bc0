-- alloy.connect: connect any connector for a user (initiate_oauth.lua, `alloy connect`).
--
-- 1. the connector's credential metadata (an unknown id: status 2, "did you mean ...");
-- 2. its authentication type: the only one, --auth-type, or asked on a terminal;
-- 3. its inputs: data fields (--field name=value, asked on a terminal by their titles),
--    secret fields (writeOnly: ALLOY_FIELD_<NAME>, read without echo on a terminal, else one
--    line each from stdin; never from argv), the auth config id when required;
-- 4. the user's connections of that connector: shown, then --new / --replace (or asked);
-- 5. OAuth through alloy.oauth (browser, redirect); the other types at once; either way the
--    new credential is confirmed by listing the user's credentials;
-- 6. --replace deletes the old ones only then, so a failed or abandoned flow loses nothing.
--
-- M.add_options(parser); M.run{ args, cfg, client, connector, redirect_uri = function() -> uri | nil, err }
-- -> { credential = } | nil, err
local cli = require "alloy.cli"
local commands = require "alloy.commands"
local connectors = require "alloy.connectors"
local credentials = require "alloy.credentials"
local failure = require "alloy.failure"
local oauth = require "alloy.oauth"
local prompt = require "alloy.prompt"

local M = {}

function M.add_options(p)
  p:option("--field", "A data field the connector needs, as name=value (repeatable). Secret fields are"
    .. " refused here: set ALLOY_FIELD_<NAME>, type them at the prompt, or pipe them on stdin."):argname("<name=value>")
    :count("*")
  p:option("--auth-type", "Authentication type when the connector offers several (oauth2, apiKey, basic,"
    .. " bearer)."):argname("<type>")
  p:option("--auth-config", "Custom auth config id (authConfigId); same as --auth-config-id."):argname("<id>")
  p:flag("--new", "The user already has a connection of this connector: add another one.")
  p:flag("--replace", "The user already has a connection of this connector: replace it (deleted only"
    .. " after the new one is confirmed).")
end

local function env_name(field)
  return "ALLOY_FIELD_" .. field:gsub("[^%w]", "_"):upper()
end
M.env_name = env_name

-- The metadata entry to use.  -> entry | nil, err
local function pick_type(args, connector, entries)
  local names = {}
  for i, e in ipairs(entries) do names[i] = e.type end
  if args.auth_type then
    for _, e in ipairs(entries) do
      if e.type:lower() == args.auth_type:lower() then return e end
    end
    return nil, failure.usage(("connector %s has no authentication type %q"):format(connector, args.auth_type),
      "use one of: " .. table.concat(names, ", "))
  end
  if #entries == 1 then return entries[1] end
  if not prompt.interactive() then
    return nil, failure.usage(("connector %s offers several authentication types: %s"):format(connector,
      table.concat(names, ", ")), "pick one with --auth-type "
      .. (names[1]:match("^[%w_%-]+$") and names[1] or "<type>")) -- a command to copy: no server text in it
  end
  local t, err = prompt.choose(("Authentication type for %s: "):format(connector), names)
  if not t then return nil, err end
  return pick_type({ auth_type = t }, connector, entries)
end

-- --field name=value pairs, checked against the entry's fields.  -> { name = value } | nil, err
local function given_fields(args, connector, entry)
  local byname, out = {}, {}
  for _, f in ipairs(entry.fields) do byname[f.name] = f end
  for _, pair in ipairs(args.field or {}) do
    local name, value = pair:match("^([^=]+)=(.*)$")
    if not name then
      return nil, failure.usage("--field takes name=value", "for example --field shopSubdomain=my-shop")
    end
    local f = byname[name]
    if not f then
      local names = {}
      for i, x in ipairs(entry.fields) do names[i] = x.name end
      return nil, failure.usage(("connector %s (%s) has no field %q"):format(connector, entry.type, name),
        #names > 0 and ("its fields: " .. table.concat(names, ", ")) or "it needs no fields")
    end
    if f.secret then
      return nil, failure.usage(("%s is a secret: it is not accepted on the command line (it would be visible in"
        .. " ps and shell history)"):format(name), ("set %s in the environment, type it at the prompt, or pipe it on"
        .. " stdin"):format(env_name(name)))
    end
    if out[name] then
      return nil, failure.usage(("--field %s given twice"):format(name), "give each field once")
    end
    out[name] = value
  end
  return out
end

-- Every input of the entry.  -> data (table or nil), auth_config_id | nil, err
local function inputs(args, connector, entry, given)
  local tty = prompt.interactive()
  local data, any = {}, false
  for _, f in ipairs(entry.fields) do
    local v = given[f.name] or os.getenv(env_name(f.name))
    if (v == nil or v == "") and f.secret then
      if tty then
        local err
        v, err = prompt.secret(("%s (%s, not shown): "):format(f.title, f.name))
        if not v then return nil, err end
      elseif f.required then
        v = io.stdin:read("*l")
        v = v and v:gsub("\r$", "")
        if not v or v == "" then
          return nil, failure.usage(("no value for the secret field %s (%s): stdin ended"):format(f.name, f.title),
            ("pipe it on stdin (one line per secret field), or set %s"):format(env_name(f.name)))
        end
      end
    elseif (v == nil or v == "") and f.required then
      if not tty then
        return nil, failure.usage(("connector %s needs the field %s (%s)"):format(connector, f.name, f.title),
          ("pass --field %s=<value>"):format(f.name) .. (f.description and (": " .. f.description) or ""))
      end
      local err
      v, err = cli.ask(("%s (%s): "):format(f.title, f.name), f.name)
      if not v then return nil, err end
    end
    if v ~= nil and v ~= "" then data[f.name], any = v, true end
  end
  local config_id = args.auth_config or args.auth_config_id
  if entry.authConfigRequired and not config_id then
    if not tty then
      return nil, failure.usage(("connector %s needs a custom auth config id"):format(connector),
        "pass --auth-config <id> (the id of the auth config set up in Alloy)")
    end
    local err
    config_id, err = cli.ask("Auth config id (authConfigId): ", "auth config id")
    if not config_id then return nil, err end
  end
  if config_id and not cli.object_id(config_id) then
    return nil, failure.usage(("%q is not an auth config id (24 hex digits)"):format(config_id))
  end
  return any and data or nil, config_id
end

-- The user's connections of this connector, and what to do about them.
-- -> existing (list), mode ("new" | "replace" | nil when there are none) | nil, err
local function duplicates(args, cfg, client, connector)
  if args.new and args.replace then
    return nil, failure.usage("--new and --replace contradict each other", "pick one")
  end
  local list, err = credentials.list(client, cfg.user_id, { url = cfg.base_url, connector = connector })
  if not list then return nil, err end
  local existing = credentials.for_connector(list, connector)
  if #existing == 0 then return existing, nil end
  cli.say("User %s already has %d %s connection%s:", cfg.user_id, #existing, connector, #existing == 1 and "" or "s")
  cli.say_table(credentials.rows(existing))
  if args.new then return existing, "new" end
  if args.replace then return existing, "replace" end
  if not prompt.interactive() then
    return nil, failure.usage(("user %s already has a connection of %s"):format(cfg.user_id, connector),
      "pass --new to add another one, or --replace to replace it (after the new one is confirmed)")
  end
  local choice, cerr = prompt.choose("Add another connection, replace the existing one, or quit? ",
    { "new", "replace", "quit" })
  if not choice then return nil, cerr end
  if choice == "quit" then return nil, failure.new("nothing created (quit at the prompt)") end
  return existing, choice
end

-- --replace: delete the old connections once the new one is confirmed.  -> fields for JSON | nil, err
local function replace(client, cfg, old, new)
  local deleted = {}
  for _, c in ipairs(old) do
    if not cli.object_id(c.credentialId) then
      -- a server's id goes into no request path and no suggested command unchecked
      return nil, failure.new(("connected (%s), but an old connection's id from the API is not 24 hex digits;"
        .. " it was not deleted"):format(new.credentialId), "check the connections with "
        .. commands.invocation("list_connections"))
    elseif c.credentialId ~= new.credentialId then
      local ok, msg, code, res = client:delete_credential(cfg.user_id, c.credentialId)
      if ok == nil then
        local f = failure.api(msg, code, res, { user_id = cfg.user_id })
        return nil, failure.new(("connected (%s), but deleting the old connection %s failed: %s"):format(
          new.credentialId, c.credentialId, f.message), ("delete it with %s %s"):format(
          commands.invocation("delete_connection"), c.credentialId))
      end
      cli.say("Replaced: deleted the old connection %s%s", c.credentialId, c.name and (" (" .. c.name .. ")") or "")
      deleted[#deleted + 1] = c.credentialId
    end
  end
  return { replaced = cli.array(deleted) }
end

-- A non-OAuth credential: created at once, then confirmed by listing.  -> cred | nil, err
local function create_direct(o, entry, data, config_id, before)
  local cfg, client, connector = o.cfg, o.client, o.connector
  local ctx = { user_id = cfg.user_id, connector = connector, url = cfg.base_url }
  local created, msg, code, res = o.client:create_credential(connector, { userId = cfg.user_id,
    authenticationType = entry.type, data = data, authConfigId = config_id })
  if created == nil then return nil, failure.api(msg, code, res, ctx) end
  local id = type(created) == "table" and type(created.credentialId) == "string" and created.credentialId or nil
  local after, lerr = credentials.list(client, cfg.user_id, ctx)
  if not after then return nil, lerr end
  local cred = id and credentials.find(after, id)
    or credentials.newest(credentials.for_connector(credentials.added(before, after), connector))
  if not cred then
    return nil, failure.new(("the API accepted the %s credential%s, but it is not in user %s's connections"):format(
      connector, id and (" " .. id) or "", cfg.user_id), "check with " .. commands.invocation("list_connections"))
  end
  return cred
end

-- The forms a secret can take in a server's message: as typed, URL-encoded, JSON-escaped.
local function forms(v)
  local url = v:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local json = require("cjson").encode(v):sub(2, -2)
  return { v, url, (url:gsub("%%20", "+")), json, (json:gsub("\\/", "/")) }
end

-- A server may echo what it was sent ("invalid apiKey abc123"): the secrets, whole or in any
-- run of 6 characters, leave the failure's message and hint as "[secret]".
local function redact(text, secrets)
  if type(text) ~= "string" then return text end
  for _, v in ipairs(secrets) do
    for _, form in ipairs(forms(v)) do
      local plain = function(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end
      text = text:gsub(plain(form), "[secret]")
      local n = math.min(#form, 6)
      for i = 1, #form - n + 1 do text = text:gsub(plain(form:sub(i, i + n - 1)), "[secret]") end
    end
  end
  return text
end

local run

function M.run(o)
  local secrets = {}
  local res, err = run(o, secrets)
  if res == nil and failure.is(err) then
    err.message, err.hint = redact(err.message, secrets), redact(err.hint, secrets)
  end
  return res, err
end

function run(o, secrets)
  local args, cfg, client, connector = o.args, o.cfg, o.client, o.connector
  local entries, merr = connectors.metadata(client, connector)
  if not entries then return nil, merr end
  local entry, terr = pick_type(args, connector, entries)
  if not entry then return nil, terr end
  local given, gerr = given_fields(args, connector, entry)
  if not given then return nil, gerr end
  local existing, mode = duplicates(args, cfg, client, connector)
  if not existing then return nil, mode end
  local data, config_id = inputs(args, connector, entry, given)
  if data == nil and failure.is(config_id) then return nil, config_id end
  for _, f in ipairs(entry.fields) do
    if f.secret and data and data[f.name] then secrets[#secrets + 1] = data[f.name] end
  end
  local on_confirmed
  if mode == "replace" then
    on_confirmed = function(cred) return replace(client, cfg, existing, cred) end
  end

  if entry.oauth then
    local uri, uerr = o.redirect_uri()
    if not uri then return nil, uerr end
    if mode == "replace" then
      local _, listen = oauth.settings(args, uri)
      if listen == false then
        return nil, failure.usage("--replace needs the redirect listener (the old connection is deleted only once"
          .. " the new one is confirmed)", "use a http://localhost:PORT/... redirect URI, or --new and delete the old"
          .. " one yourself")
      end
    end
    return oauth.run{ args = args, cfg = cfg, client = client, connector = connector, redirect_uri = uri,
                      data = data, auth_config_id = config_id, on_confirmed = on_confirmed,
                      replacing = mode == "replace" }
  end

  local before, lerr = credentials.list(client, cfg.user_id, { url = cfg.base_url, connector = connector })
  if not before then return nil, lerr end
  cli.say("Connecting %s (%s) for user %s...", connector, entry.type, cfg.user_id)
  local cred, cerr = create_direct(o, entry, data, config_id, before)
  if not cred then return nil, cerr end
  local saved, rerr = oauth.report({ args = args, cfg = cfg, connector = connector, on_confirmed = on_confirmed }, cred,
    { authenticationType = entry.type })
  if not saved then return nil, rerr end
  return { credential = cred }
end

return M
