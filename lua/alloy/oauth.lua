-- alloy.oauth: the OAuth connection flow shared by initiate_oauth.lua and test_oauth.lua.
--
-- 1. (with listening) open the loopback listener first, so a busy port fails before
--    anything is created, and snapshot the user's credentials;
-- 2. POST /connectors/{connector}/credentials -> oauthUrl, printed on stdout;
-- 3. (with listening) wait for the browser's redirect to the redirect URI (a GET), answer
--    it with a small HTML page, and confirm by listing the credentials again: only one that
--    is new since the snapshot and of this connector counts (the redirect's credentialId
--    picks among those); a request that brings none leaves the flow waiting. Print the id.
-- Alloy does the code exchange itself: nothing is "exchanged" here.
--
-- M.run{ args, cfg, client, connector, redirect_uri, data =, auth_config_id =, on_confirmed = }
--   -> { oauthUrl =, credential = (nil without listening), savedTo = } | nil, err
-- (an alloy.failure: a busy port or contradictory flags are status 2, the API or nobody
-- coming back in time status 1). It prints like the scripts (cli.say, cli.out).
local cli = require "alloy.cli"
local credentials = require "alloy.credentials"
local failure = require "alloy.failure"
local listener = require "alloy.listener"
local dotenv = require "alloy.dotenv"
local commands = require "alloy.commands"

local M = {}

local DEFAULT_TIMEOUT = 300

-- Split a redirect URI.  -> { scheme, host, port, path, explicit_port, loopback } | nil, msg
local function parse_redirect(uri)
  local scheme, rest = uri:match("^(https?)://(.+)$")
  if not scheme then return nil, ("redirect URI must be an http:// or https:// URL, got %q"):format(uri) end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  path = (path or ""):match("^([^?#]*)")
  if path == "" then path = "/" end
  authority = authority:gsub("^.*@", "")
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, ("redirect URI has no host: %q"):format(uri) end
  local explicit = port ~= nil and port ~= ""
  port = explicit and tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then return nil, ("redirect URI port out of range: %q"):format(uri) end
  local h = host:lower()
  local loopback = h == "localhost" or h == "127.0.0.1"
  return { scheme = scheme, host = host, port = port, path = path, explicit_port = explicit, loopback = loopback }
end

-- Adds the flow's options to a parser (initiate_oauth and test_oauth share them).
function M.add_options(p)
  p:option("--redirect-uri", "Where Alloy sends the browser after authorizing; overrides REDIRECT_URI.")
    :argname("<url>")
  p:flag("--listen", "Wait for the browser's redirect on the redirect URI's loopback port"
    .. " (default when it is http://localhost:PORT/... or http://127.0.0.1:PORT/...).")
  p:flag("--no-listen", "Only print the OAuth URL; do not wait for the redirect.")
  p:option("--timeout", ("Seconds to wait for the redirect (default %d)."):format(DEFAULT_TIMEOUT))
    :argname("<seconds>")
  p:flag("--save", "Write CONNECTION_ID=<new id> into the .env file (other lines are kept).")
  p:flag("--open", "Open the URL with xdg-open when a display is available.")
  p:option("--auth-config-id", "Custom OAuth app config id (authConfigId)."):argname("<id>")
end

-- Server data that goes to stdout, a browser and maybe xdg-open: an https:// URL (or an
-- http:// one on this machine, as a local sandbox serves) of printable ASCII without blanks,
-- quotes or backslashes, and nothing else (no file:, javascript:, data:, no second line).
function M.openable(url)
  if type(url) ~= "string" or not url:match("^[\33-\126]+$") or url:find("[\"'\\`<>]") then return false end
  local scheme, host = url:lower():match("^(https?)://([^/?#]+)")
  -- no user part: "https://accounts.example.com@evil.test/" is a different host than it reads
  if not host or host:find("@", 1, true) then return false end
  if scheme == "https" then return host:match("^[%w%.%-%[%]:]+$") ~= nil end
  return host:match("^127%.0%.0%.1:?%d*$") ~= nil or host:match("^localhost:?%d*$") ~= nil
    or host:match("^%[::1%]:?%d*$") ~= nil
end

local function open_browser(url)
  local display = os.getenv("DISPLAY") or os.getenv("WAYLAND_DISPLAY")
  if not display or display == "" then
    cli.say("--open: no display here; open the URL in a browser yourself")
    return
  end
  local ok = os.execute("command -v xdg-open >/dev/null 2>&1")
  if ok ~= true and ok ~= 0 then
    cli.say("--open: xdg-open is not installed; open the URL in a browser yourself")
    return
  end
  os.execute("xdg-open '" .. url:gsub("'", "'\\''") .. "' >/dev/null 2>&1 &")
  cli.say("opened the URL with xdg-open")
end

-- Whether to listen.  -> true | false | nil, err (contradictory or impossible settings)
local function listen_mode(args, r)
  if args.listen and args.no_listen then
    return nil, failure.usage("--listen and --no-listen contradict each other", "pick one")
  end
  if args.no_listen then return false end
  local can = r.scheme == "http" and r.loopback
  if args.listen then
    if not can then
      return nil, failure.usage(("cannot listen for %s://%s: only http://localhost or http://127.0.0.1 redirect URIs"
        .. " can be caught"):format(r.scheme, r.host), "use a loopback redirect URI such as"
        .. " http://localhost:3000/oauth/callback, or --no-listen")
    end
    return true
  end
  return can and r.explicit_port
end

local function page_ok(connector, cred)
  return listener.page(connector .. " is connected", {
    "Alloy created the connection <code>" .. listener.html_escape(cred.credentialId) .. "</code>"
      .. (cred.name and (" (" .. listener.html_escape(cred.name) .. ")") or "") .. ".",
    "You can close this window and return to the terminal.",
  })
end

local function page_fail(connector, why)
  return listener.page("Connecting " .. connector .. " failed", {
    listener.html_escape(why),
    "See the terminal for details. You can close this window.",
  })
end

-- The settings of a run, checked before anything is created.  -> r, listen, timeout | nil, err
function M.settings(args, uri)
  local r, perr = parse_redirect(uri)
  if not r then
    return nil, failure.usage(perr, "pass --redirect-uri http://localhost:3000/oauth/callback (or set REDIRECT_URI)")
  end
  local listen, lerr = listen_mode(args, r)
  if listen == nil then return nil, lerr end
  local timeout = DEFAULT_TIMEOUT
  if args.timeout then
    timeout = tonumber(args.timeout)
    if not timeout or not (timeout > 0 and timeout < math.huge) then -- NaN too (LuaJIT reads "nan")
      return nil, failure.usage(("--timeout must be a positive number of seconds, got %q"):format(args.timeout))
    end
  end
  if args.save and not listen then
    return nil, failure.usage("--save needs the redirect listener (the new connection id is only known after the"
      .. " redirect)", "use a http://localhost:PORT/... redirect URI (or --listen); or run list_connections.lua"
      .. " afterwards")
  end
  return r, listen, timeout
end

-- Open the listener first (a busy port fails before anything is created) and snapshot the
-- user's credentials.  -> L, before | nil, err
local function open_listener(client, cfg, r, ctx)
  local L, lerr, lcode = listener.open("127.0.0.1", r.port)
  if not L then
    local hint = lcode == "EADDRINUSE"
      and ("another program is using port %d (a dev server?); stop it, or choose a redirect URI with a free port"
        .. " (it must match the one registered for the app), or pass --no-listen"):format(r.port)
      or "ports below 1024 need privileges; use a redirect URI with a port such as 3000, or --no-listen"
    return nil, failure.usage(lerr, hint)
  end
  local before, err = credentials.list(client, cfg.user_id, ctx)
  if not before then L:close(); return nil, err end
  return L, before
end

-- The credential a redirect announces: one that is new since the snapshot and of this
-- connector (the redirect's credentialId when it is one of those, else the newest of them).
-- A redirect is only a cue to look: any local page can send one, with any id in it.
local function confirmed(before, after, connector, id)
  local fresh = credentials.for_connector(credentials.added(before, after), connector)
  return (id and credentials.find(fresh, id)) or credentials.newest(fresh)
end

-- Wait for the browser and find the new credential.  -> outcome | nil, err
local function catch_redirect(L, o, r, timeout, before, ctx)
  local cfg, client, connector, uri = o.cfg, o.client, o.connector, o.redirect_uri
  cli.say("Waiting up to %g s for the browser to come back to %s (listening on 127.0.0.1:%d; Ctrl-C to stop)...",
    timeout, uri, r.port)
  local outcome, early = nil, 0
  local req, werr = L:wait{ path = r.path, timeout = timeout, respond = function(rq)
    local q = rq.query
    if q.error or q.success == "false" then
      -- a denial can only cancel the flow; nothing tells a real one from a forged one
      local why = q.error_description or q.error or "authorization was not completed"
      outcome = failure.new("authorization failed: " .. why,
        "try again; if it keeps failing, check the app's OAuth settings in Alloy")
      return 400, page_fail(connector, "Authorization failed: " .. why), true
    end
    local after, lerr = credentials.list(client, cfg.user_id, ctx)
    if not after then
      outcome = lerr
      return 502, page_fail(connector, "Could not confirm the connection: " .. lerr.message), true
    end
    local cred = confirmed(before, after, connector, q.credentialId)
    if not cred then
      early = early + 1
      cli.say("A request came to %s, but no new %s connection has appeared for user %s; still waiting...",
        uri, connector, cfg.user_id)
      return 409, listener.page("No new " .. connector .. " connection yet", {
        "The terminal is still waiting for the authorization to finish.",
      }), false
    end
    outcome = { cred = cred, query = q }
    return 200, page_ok(connector, cred), true
  end }
  if not req then
    local came = early > 0 and (", and the %d request%s that came brought no new %s connection"):format(early,
      early == 1 and "" or "s", connector) or ""
    return nil, failure.new(("no redirect arrived on %s within %g s (%s)%s"):format(uri, timeout, werr or "timeout",
      came), "open the URL in a browser and finish the authorization; --timeout sets how long to wait (seconds)"
        .. (o.replacing and "; the old connection was kept" or ""))
  end
  if failure.is(outcome) then return nil, outcome end
  return outcome
end

-- Run the flow (see the top of this file).
function M.run(o)
  local args, cfg, client, connector = o.args, o.cfg, o.client, o.connector
  local uri = o.redirect_uri
  local r, listen, timeout = M.settings(args, uri)
  if not r then return nil, listen end
  local ctx = { user_id = cfg.user_id, connector = connector, url = cfg.base_url }

  local L, before
  if listen then
    L, before = open_listener(client, cfg, r, ctx)
    if not L then return nil, before end
  end

  local body = { userId = cfg.user_id, authenticationType = "oauth2", redirectUri = uri,
                 authConfigId = o.auth_config_id or args.auth_config_id, data = o.data }
  local created, msg, code, res = client:create_credential(connector, body)
  local oauth_url = type(created) == "table" and created.oauthUrl or (type(created) == "string" and created) or nil
  if created == nil or type(oauth_url) ~= "string" or oauth_url == "" then
    if L then L:close() end
    if created == nil then return nil, failure.api(msg, code, res, ctx) end
    return nil, failure.new("the API answered without an oauthUrl", "check ALLOY_BASE_URL and ALLOY_API_VERSION")
  end
  if not M.openable(oauth_url) then
    if L then L:close() end
    return nil, failure.new("the API answered with an oauthUrl that is not an http(s) URL; not shown or opened",
      "check ALLOY_BASE_URL (run with --verbose to see the answer)")
  end

  cli.say("Open this URL in a browser to connect %s for user %s:", connector, cfg.user_id)
  if args.json then
    if not listen then
      cli.out(cli.json({ oauthUrl = oauth_url, connector = connector, userId = cfg.user_id,
                         redirectUri = uri }) .. "\n")
    else
      cli.err(oauth_url, "\n")
    end
  else
    cli.out(oauth_url .. "\n")
  end
  if args.open then open_browser(oauth_url) end

  if not listen then
    cli.say("After authorizing, Alloy sends the browser to %s.", uri)
    cli.say("Then find the new connection id with: %s --connector %s", commands.invocation("list_connections"),
      connector)
    return { oauthUrl = oauth_url }
  end

  local outcome, werr = catch_redirect(L, o, r, timeout, before, ctx)
  L:close()
  if not outcome then return nil, werr end

  local extra = { oauthUrl = oauth_url, redirectUri = uri, redirectQuery = outcome.query }
  local saved, rerr = M.report(o, outcome.cred, extra)
  if not saved then return nil, rerr end
  return { oauthUrl = oauth_url, credential = outcome.cred, savedTo = saved ~= true and saved or nil }
end

-- After a new credential is confirmed (by the OAuth redirect or at once for the other
-- types): o.on_confirmed(cred) (may add fields to the JSON, e.g. what it replaced), --save,
-- then the result: the id on stdout, or one JSON document with `extra` in it.
-- -> the .env path saved to, or true | nil, err
function M.report(o, cred, extra)
  local args, cfg, connector = o.args, o.cfg, o.connector
  -- the id goes to stdout and maybe .env: it must have the documented shape (24 hex)
  if not cli.object_id(cred.credentialId) then
    return nil, failure.new(("the new connection's id from the API is not a 24-hex id: %s")
      :format(cli.excerpt(cred.credentialId)), "check ALLOY_BASE_URL")
  end
  cli.say("Connected: %s connection %s%s", cred.type or connector, cred.credentialId,
    cred.name and (" (" .. cred.name .. ")") or "")
  local doc = { connector = connector, userId = cfg.user_id, credentialId = cred.credentialId, credential = cred }
  for k, v in pairs(extra or {}) do doc[k] = v end
  if o.on_confirmed then
    local more, cerr = o.on_confirmed(cred)
    if not more then return nil, cerr end
    for k, v in pairs(more) do doc[k] = v end
  end
  local saved
  if args.save then
    local ok, serr = dotenv.set(cfg.env_path, "CONNECTION_ID", cred.credentialId)
    if not ok then
      return nil, failure.new("could not save CONNECTION_ID to " .. cfg.env_path .. ": " .. tostring(serr),
        ("add CONNECTION_ID=%s to it by hand"):format(cred.credentialId))
    end
    saved = cfg.env_path
    cli.say("Saved CONNECTION_ID=%s to %s", cred.credentialId, cfg.env_path)
  end
  doc.savedTo = saved or cli.null
  if args.json then
    cli.out(cli.json(doc) .. "\n")
  else
    cli.out(cred.credentialId .. "\n")
  end
  if not saved then
    cli.say("Next: use it with CONNECTION_ID=%s (add that line to .env, or run again with --save)", cred.credentialId)
  end
  cli.say("List connections: %s --connector %s", commands.invocation("list_connections"), connector)
  return saved or true
end

return M
