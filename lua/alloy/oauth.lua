-- alloy.oauth: the OAuth part of connecting a connector (alloy connect, alloy test-oauth),
-- run by alloy.connect.
--
-- 1. (with listening) open the loopback listener first, so a busy port fails before
--    anything is created, and snapshot the user's credentials;
-- 2. POST /connectors/{connector}/credentials -> oauthUrl, printed on stdout;
-- 3. (with listening) wait for the browser's redirect to the redirect URI (a GET), answer
--    it with a small HTML page, and confirm by listing the credentials again
--    (alloy.credentials.confirm); a request that brings none leaves the flow waiting.
-- Alloy does the code exchange itself: nothing is "exchanged" here.
--
-- M.OPTIONS                        the flow's options, for a command's declaration
-- M.settings(args, uri)            -> r, listen, timeout | nil, err: checked before anything is sent
-- M.openable(url)                  -> whether a server's URL may be printed and opened
-- M.run{ ctx, connector, redirect_uri, data =, auth_config_id =, on_confirmed =, replacing = }
--   -> { oauthUrl =, credential = (nil without listening), savedTo = } | nil, err
-- M.report(o, cred, extra)         the confirmed credential: --save, then the id or JSON on stdout
-- (failures: a busy port or contradictory flags are status 2, the API or nobody coming back in
-- time status 1). It prints through ctx.out and names commands with ctx:command.
local config = require "alloy.config"
local credentials = require "alloy.credentials"
local failure = require "alloy.failure"
local ids = require "alloy.ids"
local listener = require "alloy.listener"

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

M.OPTIONS = {
  { "--redirect-uri", "<url>", "Where Alloy sends the browser after authorizing; overrides REDIRECT_URI (default "
    .. config.DEFAULTS.redirect_uri .. ")." },
  { "--listen", "Wait for the browser's redirect on the redirect URI's loopback port (default when it is"
    .. " http://localhost:PORT/... or http://127.0.0.1:PORT/...)." },
  { "--no-listen", "Only print the OAuth URL; do not wait for the redirect." },
  { "--timeout", "<seconds>", ("Seconds to wait for the redirect (default %d)."):format(DEFAULT_TIMEOUT) },
  { "--save", "Write CONNECTION_ID=<new id> into the .env file (other lines are kept)." },
  { "--open", "Open the URL with xdg-open when a display is available." },
}

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

local function open_browser(out, url)
  local display = os.getenv("DISPLAY") or os.getenv("WAYLAND_DISPLAY")
  if not display or display == "" then
    out:say("--open: no display here; open the URL in a browser yourself")
    return
  end
  local ok = os.execute("command -v xdg-open >/dev/null 2>&1")
  if ok ~= true and ok ~= 0 then
    out:say("--open: xdg-open is not installed; open the URL in a browser yourself")
    return
  end
  os.execute("xdg-open " .. ids.quote(url) .. " >/dev/null 2>&1 &")
  out:say("opened the URL with xdg-open")
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
        .. " can be caught"):format(r.scheme, r.host), "use a loopback redirect URI such as "
        .. config.DEFAULTS.redirect_uri .. ", or --no-listen")
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
    return nil, failure.usage(perr, "pass --redirect-uri " .. config.DEFAULTS.redirect_uri .. " (or set REDIRECT_URI)")
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
      .. " redirect)", "use a http://localhost:PORT/... redirect URI (or --listen), or save an id you have"
      .. " later with the connections command's --save")
  end
  return r, listen, timeout
end

-- Open the listener first (a busy port fails before anything is created) and snapshot the
-- user's credentials.  -> L, before | nil, err
local function open_listener(client, cfg, r)
  -- localhost: 127.0.0.1 and [::1] both, so that no other program can take the redirect
  local L, lerr, lcode = listener.open(r.host:lower() == "localhost" and "localhost" or "127.0.0.1", r.port)
  if not L then
    local hint = lcode == "EADDRINUSE"
      and ("another program is using port %d (a dev server?); stop it, or choose a redirect URI with a free port"
        .. " (it must match the one registered for the app), or pass --no-listen"):format(r.port)
      or "ports below 1024 need privileges; use a redirect URI with a port such as 3000, or --no-listen"
    return nil, failure.usage(lerr, hint)
  end
  local before, err = credentials.list(client, cfg.user_id)
  if not before then L:close(); return nil, err end
  return L, before
end

-- Wait for the browser and find the new credential.  -> outcome | nil, err
local function catch_redirect(L, o, r, timeout, before)
  local out, cfg, client, connector, uri = o.ctx.out, o.cfg, o.client, o.connector, o.redirect_uri
  out:say("Waiting up to %g s for the browser to come back to %s (listening on %s; Ctrl-C to stop)...",
    timeout, uri, L.addresses)
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
    local after, lerr = credentials.list(client, cfg.user_id)
    if not after then
      outcome = lerr
      return 502, page_fail(connector, "Could not confirm the connection: " .. lerr.message), true
    end
    local cred = credentials.confirm(before, after, connector, q.credentialId)
    if not cred then
      early = early + 1
      out:say("A request came to %s, but no new %s connection has appeared for user %s; still waiting...",
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
  local ctx, connector, uri = o.ctx, o.connector, o.redirect_uri
  local args, out = ctx.args, ctx.out
  local cfg, client = ctx:config{ user = true }, ctx:client()
  o.cfg, o.client = cfg, client
  local r, listen, timeout = M.settings(args, uri)
  if not r then return nil, listen end

  local L, before
  if listen then
    L, before = open_listener(client, cfg, r)
    if not L then return nil, before end
  end

  local body = { userId = cfg.user_id, authenticationType = "oauth2", redirectUri = uri,
                 authConfigId = o.auth_config_id, data = o.data }
  local created, msg, code, res = client:create_credential(connector, body)
  local oauth_url = type(created) == "table" and created.oauthUrl or (type(created) == "string" and created) or nil
  if created == nil or type(oauth_url) ~= "string" or oauth_url == "" then
    if L then L:close() end
    if created == nil then return nil, failure.api(msg, code, res, "create_credential") end
    return nil, failure.new("the API answered without an oauthUrl", "check ALLOY_BASE_URL and ALLOY_API_VERSION")
  end
  if not M.openable(oauth_url) then
    if L then L:close() end
    return nil, failure.new("the API answered with an oauthUrl that is not an http(s) URL; not shown or opened",
      "check ALLOY_BASE_URL (run with --verbose to see the answer)")
  end

  out:say("Open this URL in a browser to connect %s for user %s:", connector, cfg.user_id)
  if args.json and not listen then
    out:out(require("alloy.json").encode({ oauthUrl = oauth_url, connector = connector, userId = cfg.user_id,
                                           redirectUri = uri }) .. "\n")
  elseif args.json then
    out:err(oauth_url, "\n")
  else
    out:out(oauth_url .. "\n")
  end
  if args.open then open_browser(out, oauth_url) end

  if not listen then
    out:say("After authorizing, Alloy sends the browser to %s.", uri)
    out:say("Then find the new connection id with: %s", ctx:command("connections", connector))
    return { oauthUrl = oauth_url }
  end

  local outcome, werr = catch_redirect(L, o, r, timeout, before)
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
  local ctx, connector = o.ctx, o.connector
  local args, out, cfg = ctx.args, ctx.out, ctx:config()
  local json = require "alloy.json"
  -- the id goes to stdout and maybe .env: it must have the documented shape (24 hex)
  if not ids.object_id(cred.credentialId) then
    return nil, failure.new(("the new connection's id from the API is not a 24-hex id: %s")
      :format(require("alloy.output").excerpt(cred.credentialId)), "check ALLOY_BASE_URL")
  end
  out:say("Connected: %s connection %s%s", cred.type or connector, cred.credentialId,
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
    local ok, serr = M.save(cfg, cred.credentialId)
    if not ok then return nil, serr end
    saved = cfg.env_path
    out:say("Saved CONNECTION_ID=%s to %s", cred.credentialId, cfg.env_path)
  end
  doc.savedTo = saved or json.null
  out:out((args.json and json.encode(doc) or cred.credentialId) .. "\n")
  if not saved then
    out:say("Next: use it with CONNECTION_ID=%s in %s; to save it there: %s", cred.credentialId, cfg.env_path,
      ctx:command("connections", connector, "--save", cred.credentialId))
  end
  out:say("List connections: %s", ctx:command("connections", connector))
  return saved or true
end

-- CONNECTION_ID=id into the env file (other lines kept).  -> true | nil, err
function M.save(cfg, id)
  local ok, serr = require("alloy.dotenv").set(cfg.env_path, "CONNECTION_ID", id)
  if not ok then
    return nil, failure.new("could not save CONNECTION_ID to " .. cfg.env_path .. ": " .. tostring(serr),
      ("add CONNECTION_ID=%s to it by hand"):format(id))
  end
  return true
end

return M
