-- alloy.connect: connect any connector for a user (alloy connect, alloy test-oauth).
--
-- 1. the connector's credential metadata (an unknown id: status 2, "did you mean ...");
-- 2. its authentication type: the only one, --auth-type, or asked on a terminal;
-- 3. its inputs: data fields (--field name=value, asked on a terminal by their titles),
--    secret fields (ALLOY_FIELD_<NAME>, read without echo on a terminal, else from stdin;
--    never from argv), the auth config id when required;
-- 4. the user's connections of that connector: shown, then --new / --replace (or asked);
-- 5. OAuth through alloy.oauth (browser, redirect); the other types at once; either way the
--    new credential is confirmed by listing the user's credentials (credentials.confirm);
-- 6. --replace deletes the old ones only then, so a failed or abandoned flow loses nothing.
--
-- M.OPTIONS (a command's declaration); M.env_name(field) -> "ALLOY_FIELD_APIKEY"
-- M.run{ ctx, connector, redirect_uri = function() -> uri | nil, err } -> { credential = } | nil, err
-- Secret values are masked in everything printed afterwards (ctx.out:secret).
local connectors = require "alloy.connectors"
local credentials = require "alloy.credentials"
local failure = require "alloy.failure"
local ids = require "alloy.ids"
local oauth = require "alloy.oauth"

local M = {}

-- The options of connecting: the OAuth flow's (alloy.oauth), then these.
M.OPTIONS = {
  { "--field", "<name=value>", "A data field the connector needs, as name=value (repeatable). Secret fields are"
    .. " refused here: set ALLOY_FIELD_<NAME>, type them at the prompt, or pipe them on stdin.", many = true },
  { "--auth-type", "<type>", "Authentication type when the connector offers several (oauth2, apiKey, basic,"
    .. " bearer)." },
  { "--auth-config --auth-config-id", "<id>", "Custom auth config id (authConfigId), when the connector"
    .. " needs one." },
  { "--new", "The user already has a connection of this connector: add another one." },
  { "--replace", "The user already has a connection of this connector: replace it (deleted only after the new"
    .. " one is confirmed)." },
}
for i, o in ipairs(oauth.OPTIONS) do table.insert(M.OPTIONS, i, o) end

local function env_name(field)
  return "ALLOY_FIELD_" .. field:gsub("[^%w]", "_"):upper()
end
M.env_name = env_name

-- The metadata entry to use.  -> entry | nil, err
local function pick_type(ctx, connector, entries, wanted)
  local names = {}
  for i, e in ipairs(entries) do names[i] = e.type end
  wanted = wanted or ctx.args.auth_type
  if wanted then
    for _, e in ipairs(entries) do
      if e.type:lower() == wanted:lower() then return e end
    end
    return nil, failure.usage(("connector %s has no authentication type %q"):format(connector, wanted),
      "use one of: " .. table.concat(names, ", "))
  end
  if #entries == 1 then return entries[1] end
  local prompt = ctx:prompt()
  if not prompt:interactive() then
    return nil, failure.usage(("connector %s offers several authentication types: %s"):format(connector,
      table.concat(names, ", ")), "pick one with --auth-type " .. ids.word(names[1], "<type>"))
  end
  local t, err = prompt:choose(("Authentication type for %s: "):format(connector), names)
  if not t then return nil, err end
  return pick_type(ctx, connector, entries, t)
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

-- A secret from stdin (not a terminal): with one secret field, the whole of stdin (a key file
-- piped in), its trailing newline cut; with several, one line each, in order.
local function read_secret(entry)
  local secrets = 0
  for _, f in ipairs(entry.fields) do
    if f.secret then secrets = secrets + 1 end
  end
  local v = io.stdin:read(secrets == 1 and "*a" or "*l")
  return v and (v:gsub(secrets == 1 and "\r?\n$" or "\r$", ""))
end

-- Every input of the entry.  -> data (table or nil), auth_config_id | nil, err
local function inputs(ctx, connector, entry, given)
  local prompt = ctx:prompt()
  local tty = prompt:interactive()
  local data, any = {}, false
  for _, f in ipairs(entry.fields) do
    local v = given[f.name] or os.getenv(env_name(f.name))
    if (v == nil or v == "") and f.secret then
      if tty then
        local err
        v, err = prompt:secret(("%s (%s, not shown): "):format(f.title, f.name))
        if not v then return nil, err end
      elseif f.required then
        v = read_secret(entry)
        if not v or v == "" then
          return nil, failure.usage(("no value for the secret field %s (%s): stdin ended"):format(f.name, f.title),
            ("pipe it on stdin (one line per secret field when there are several), or set %s"):format(
              env_name(f.name)))
        end
      end
    elseif (v == nil or v == "") and f.required then
      if not tty then
        return nil, failure.usage(("connector %s needs the field %s (%s)"):format(connector, f.name, f.title),
          ("pass --field %s=<value>"):format(ids.word(f.name, "<name>")) .. (f.description and (": " .. f.description)
          or ""))
      end
      local err
      v, err = prompt:ask(("%s (%s): "):format(f.title, f.name), f.name)
      if not v then return nil, err end
    end
    if v ~= nil and v ~= "" then
      data[f.name], any = v, true
      if f.secret then ctx:secret(v) end
    end
  end
  local config_id = ctx.args.auth_config
  if entry.authConfigRequired and not config_id then
    if not tty then
      return nil, failure.usage(("connector %s needs a custom auth config id"):format(connector),
        "pass --auth-config <id> (the id of the auth config set up in Alloy)")
    end
    local err
    config_id, err = prompt:ask("Auth config id (authConfigId): ", "auth config id")
    if not config_id then return nil, err end
  end
  if config_id then
    local _, bad = ids.check_object_id("auth config", config_id)
    if bad then return nil, bad end
  end
  return any and data or nil, config_id
end

-- The user's connections of this connector, and what to do about them.
-- -> existing (list), mode ("new" | "replace" | nil when there are none) | nil, err
local function duplicates(ctx, connector)
  local args, out, cfg = ctx.args, ctx.out, ctx:config()
  if args.new and args.replace then
    return nil, failure.usage("--new and --replace contradict each other", "pick one")
  end
  local list, err = credentials.list(ctx:client(), cfg.user_id)
  if not list then return nil, err end
  local existing = credentials.for_connector(list, connector)
  if #existing == 0 then return existing, nil end
  out:say("User %s already has %d %s connection%s:", cfg.user_id, #existing, connector, #existing == 1 and "" or "s")
  ctx:say_table(credentials.rows(existing))
  if args.new then return existing, "new" end
  if args.replace then return existing, "replace" end
  local prompt = ctx:prompt()
  if not prompt:interactive() then
    return nil, failure.usage(("user %s already has a connection of %s"):format(cfg.user_id, connector),
      "pass --new to add another one, or --replace to replace it (after the new one is confirmed)")
  end
  local choice, cerr = prompt:choose("Add another connection, replace the existing one, or quit? ",
    { "new", "replace", "quit" })
  if not choice then return nil, cerr end
  if choice == "quit" then return nil, failure.declined("Nothing created (you chose quit).") end
  return existing, choice
end

-- --replace: delete the old connections once the new one is confirmed.  -> fields for JSON | nil, err
local function replace(ctx, old, new)
  local client, cfg = ctx:client(), ctx:config()
  local deleted = {}
  for _, c in ipairs(old) do
    if not ids.object_id(c.credentialId) then
      -- a server's id goes into no request path and no suggested command unchecked
      return nil, failure.suggest(failure.new(("connected (%s), but an old connection's id from the API is not 24"
        .. " hex digits; it was not deleted"):format(new.credentialId)), "check the connections", "connections")
    elseif c.credentialId ~= new.credentialId then
      local ok, msg, code, res = client:delete_credential(cfg.user_id, c.credentialId)
      if ok == nil then
        local f = failure.api(msg, code, res, "delete_credential")
        return nil, failure.suggest(failure.new(("connected (%s), but deleting the old connection %s failed: %s")
          :format(new.credentialId, c.credentialId, f.message)), "delete it with", "disconnect", c.credentialId)
      end
      ctx.out:say("Replaced: deleted the old connection %s%s", c.credentialId, c.name and (" (" .. c.name .. ")") or "")
      deleted[#deleted + 1] = c.credentialId
    end
  end
  return { replaced = require("alloy.json").array(deleted) }
end

-- A non-OAuth credential: created at once, then confirmed by listing.  -> cred | nil, err
local function create_direct(ctx, connector, entry, data, config_id, before)
  local client, cfg = ctx:client(), ctx:config()
  local created, msg, code, res = client:create_credential(connector, { userId = cfg.user_id,
    authenticationType = entry.type, data = data, authConfigId = config_id })
  if created == nil then return nil, failure.api(msg, code, res, "create_credential") end
  local id = type(created) == "table" and type(created.credentialId) == "string" and created.credentialId or nil
  local after, lerr = credentials.list(client, cfg.user_id)
  if not after then return nil, lerr end
  local cred = credentials.confirm(before, after, connector, id)
  if not cred then
    return nil, failure.suggest(failure.new(("the API accepted the %s credential%s, but no new one is in user %s's"
      .. " connections"):format(connector, id and (" " .. ids.word(id, "(not an id)")) or "", cfg.user_id)),
      "check with", "connections", connector)
  end
  return cred
end

function M.run(o)
  local ctx, connector = o.ctx, o.connector
  local cfg, client = ctx:config{ user = true }, ctx:client()
  local entries, merr = connectors.metadata(client, connector)
  if not entries then return nil, merr end
  local entry, terr = pick_type(ctx, connector, entries)
  if not entry then return nil, terr end
  local given, gerr = given_fields(ctx.args, connector, entry)
  if not given then return nil, gerr end
  local existing, mode = duplicates(ctx, connector)
  if not existing then return nil, mode end
  local data, config_id = inputs(ctx, connector, entry, given)
  if data == nil and failure.is(config_id) then return nil, config_id end
  local on_confirmed
  if mode == "replace" then
    on_confirmed = function(cred) return replace(ctx, existing, cred) end
  end

  if entry.oauth then
    local uri, uerr = o.redirect_uri()
    if not uri then return nil, uerr end
    if mode == "replace" then
      local _, listen = oauth.settings(ctx.args, uri)
      if listen == false then
        return nil, failure.usage("--replace needs the redirect listener (the old connection is deleted only once"
          .. " the new one is confirmed)", "use a http://localhost:PORT/... redirect URI, or --new and delete the old"
          .. " one yourself")
      end
    end
    return oauth.run{ ctx = ctx, connector = connector, redirect_uri = uri, data = data, auth_config_id = config_id,
                      on_confirmed = on_confirmed, replacing = mode == "replace" }
  end

  local before, lerr = credentials.list(client, cfg.user_id)
  if not before then return nil, lerr end
  ctx.out:say("Connecting %s (%s) for user %s...", connector, entry.type, cfg.user_id)
  local cred, cerr = create_direct(ctx, connector, entry, data, config_id, before)
  if not cred then return nil, cerr end
  local saved, rerr = oauth.report({ ctx = ctx, connector = connector, on_confirmed = on_confirmed }, cred,
    { authenticationType = entry.type })
  if not saved then return nil, rerr end
  return { credential = cred }
end

return M
