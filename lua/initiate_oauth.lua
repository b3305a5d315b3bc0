-- initiate_oauth.lua: connect a connector for a user (`npm run initiate-oauth`, `alloy connect`).
-- OAuth connectors: print the OAuth URL and by default catch the browser's redirect on a
-- loopback port, then print the new connection id; API-key, basic and bearer connectors are
-- connected at once from their fields (secrets never from the command line). alloy.connect.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local connect = require "alloy.connect"
local oauth = require "alloy.oauth"

local parser = cli.parser("initiate_oauth.lua",
  "Connect a connector for a user. OAuth connectors: print the OAuth URL on stdout; with a loopback redirect"
  .. " URI (http://localhost:PORT/...) wait for the browser to come back, confirm the new connection by"
  .. " listing the user's credentials, and print its id on a second stdout line. API-key, basic and bearer"
  .. " connectors: read their fields, create the connection, confirm it, print its id.",
  [[
Without --connector / --redirect-uri (and REDIRECT_URI) it asks for them: on a terminal with a
prompt, otherwise one answer per line on stdin. Empty answers are asked again; end of input exits 2.
A busy listener port is a configuration error (exit 2); nobody coming back in time is exit 1.
Fields the connector needs come from --field name=value or are asked on a terminal; secret fields
(API keys, passwords, tokens) never from the command line: ALLOY_FIELD_<NAME> (e.g.
ALLOY_FIELD_APIKEY), typed without echo on a terminal, or one line each on stdin.
When the user already has a connection of the connector: --new adds another, --replace
replaces it once the new one is confirmed; on a terminal it asks.

Examples:
  {cmd}                      interactive
  {cmd} -c notion --redirect-uri http://localhost:3000/oauth/callback --save
  {cmd} -c slack --redirect-uri https://app.example.com/cb --json
  {cmd} -c shopify --field shopSubdomain=my-shop --redirect-uri http://localhost:3000/cb
  printf '%s\n' "$ACUITY_KEY" | {cmd} -c acuityScheduling --field userId=12345]])
parser:option("-c --connector", "Connector id, e.g. notion, slack, hubspot."):argname("<id>")
oauth.add_options(parser)
connect.add_options(parser)

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local cfg = cli.exit_on(cli.config(args, { redirect_uri = args.redirect_uri }))
  cli.exit_on(cli.require_config(cfg, true))
  local connector = args.connector
  if not connector or connector == "" then
    connector = cli.exit_on(cli.ask("Connector id (e.g. notion, slack, hubspot): ", "connector id"))
  end
  if not connector:match("^[%w_%.%-]+$") then
    return nil, require("alloy.failure").usage(("connector id %q has unexpected characters"):format(connector),
      "connector ids look like notion, slack, hubspot, googleDrive")
  end
  -- a redirect URI given up front is checked before anything is sent
  if cfg.redirect_uri then cli.exit_on(oauth.settings(args, cfg.redirect_uri)) end
  -- asked only for OAuth connectors, after their other inputs
  local function redirect()
    if cfg.redirect_uri then return cfg.redirect_uri end
    return cli.ask("Redirect URI (e.g. http://localhost:3000/oauth/callback): ", "redirect URI")
  end
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local done, err = connect.run{ args = args, cfg = cfg, client = client, connector = connector,
                                 redirect_uri = redirect }
  client:close()
  if not done then return nil, err end
  return cli.OK
end

cli.main(main)
