-- initiate_oauth.lua: start an OAuth connection for a user (`npm run initiate-oauth`), and
-- by default catch the browser's redirect on a loopback port and print the new connection id.
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local oauth = require "alloy.oauth"

local parser = cli.parser("initiate_oauth.lua",
  "Create an OAuth credential for a user and print the OAuth URL on stdout. With a loopback redirect URI"
  .. " (http://localhost:PORT/...) it waits for the browser to come back, confirms the new connection by"
  .. " listing the user's credentials, and prints its id on a second stdout line.",
  [[
Without --connector / --redirect-uri (and REDIRECT_URI) it asks for them: on a terminal with a
prompt, otherwise one answer per line on stdin. Empty answers are asked again; end of input exits 2.
A busy listener port is a configuration error (exit 2); nobody coming back in time is exit 1.

Examples:
  {cmd}                      interactive
  {cmd} -c notion --redirect-uri http://localhost:3000/oauth/callback --save
  {cmd} -c slack --redirect-uri https://app.example.com/cb --json]])
parser:option("-c --connector", "Connector id, e.g. notion, slack, hubspot."):argname("<id>")
oauth.add_options(parser)

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
  local redirect = cfg.redirect_uri
  if not redirect then
    redirect = cli.exit_on(cli.ask("Redirect URI (e.g. http://localhost:3000/oauth/callback): ", "redirect URI"))
  end
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local done, err = oauth.run{ args = args, cfg = cfg, client = client, connector = connector, redirect_uri = redirect }
  client:close()
  if not done then return nil, err end
  return cli.OK
end

cli.main(main)
