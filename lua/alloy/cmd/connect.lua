-- alloy connect (initiate_oauth.lua, `npm run initiate-oauth`): connect a connector for a
-- user. OAuth connectors: the OAuth URL, then (with a loopback redirect URI) the new
-- connection's id once the browser comes back; API-key, basic and bearer connectors at once
-- from their fields. The flow is alloy.connect's.
local config = require "alloy.config"
local connect = require "alloy.connect"
local oauth = require "alloy.oauth"

local options = { { "-c --connector", "<id>", "The connector, as the CONNECTOR argument.", same_as = "connector" } }
for _, o in ipairs(connect.OPTIONS) do options[#options + 1] = o end

local M = {
  summary = "connect an app for a user (OAuth URL, then the new connection)",
  description = "Connect a connector for a user. OAuth connectors: print the OAuth URL on stdout; with a loopback"
    .. " redirect URI (http://localhost:PORT/..., the default " .. config.DEFAULTS.redirect_uri .. ") wait for the"
    .. " browser to come back, confirm the new connection by listing the user's credentials, and print its id on a"
    .. " second stdout line. API-key, basic and bearer connectors: read their fields, create the connection,"
    .. " confirm it, print its id.",
  user = true,
  arguments = { { "connector", "The connector id: notion, slack, hubspot ...", optional = true } },
  options = options,
  examples = {
    { "", "asks for the connector and the redirect URI" },
    { "notion --save", "connect Notion, catch the redirect, save CONNECTION_ID" },
    { "slack --redirect-uri https://app.example.com/cb --json" },
    { "shopify --field shopSubdomain=my-shop" },
    { "acuityScheduling --field userId=12345 < key.txt", "its API key from stdin" },
  },
  notes = [[
Without a connector it asks for one, then for the redirect URI (empty: the default): on a
terminal with a prompt, otherwise one answer per line on stdin. End of input exits 2.
A busy listener port is a configuration error (exit 2); nobody coming back in time is exit 1.
Fields the connector needs come from --field name=value or are asked on a terminal; secret fields
(API keys, passwords, tokens) never from the command line: ALLOY_FIELD_<NAME> (e.g.
ALLOY_FIELD_APIKEY), typed without echo on a terminal, or from stdin.
When the user already has a connection of the connector: --new adds another, --replace
replaces it once the new one is confirmed; on a terminal it asks.]],
}

function M.run(ctx)
  local ids = require "alloy.ids"
  local failure = require "alloy.failure"
  local cfg = ctx:config{ user = true }
  local connector, asked = ctx.args.connector, false
  if not connector or connector == "" then
    connector = ctx:check(ctx:prompt():ask("Connector id (e.g. notion, slack, hubspot): ", "connector id"))
    asked = true
  end
  if not ids.name(connector) then
    return nil, failure.usage(("connector id %q has unexpected characters"):format(connector),
      "connector ids look like notion, slack, hubspot, googleDrive")
  end
  -- a redirect URI given up front is checked before anything is sent
  if cfg.redirect_uri then ctx:check(oauth.settings(ctx.args, cfg.redirect_uri)) end
  -- asked only for OAuth connectors, after their other inputs, when the connector was asked too
  local function redirect()
    if cfg.redirect_uri then return cfg.redirect_uri end
    if not asked then return config.DEFAULTS.redirect_uri end
    local prompt = ctx:prompt()
    local uri = prompt:answer(("Redirect URI [%s]: "):format(config.DEFAULTS.redirect_uri), prompt:interactive())
    if uri == nil then return nil, failure.usage("no redirect URI given (end of input)") end
    return uri ~= "" and uri or config.DEFAULTS.redirect_uri
  end
  local done, err = connect.run{ ctx = ctx, connector = connector, redirect_uri = redirect }
  if not done then return nil, err end
  return 0
end

return M
