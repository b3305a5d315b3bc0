-- test_oauth.lua: the Notion preset of the OAuth flow (`npm run test-oauth`): shows the
-- configuration it uses (never the key), runs the flow, and prints the next steps (once).
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"
local commands = require "alloy.commands"
local oauth = require "alloy.oauth"

local CONNECTOR = "notion"
local DEFAULT_REDIRECT = "http://localhost:3000/oauth/callback"

local parser = cli.parser("test_oauth.lua",
  "Connect Notion for a user: the OAuth flow of {cmd:initiate_oauth} with connector notion and redirect URI"
  .. " REDIRECT_URI (default " .. DEFAULT_REDIRECT .. "). Prints the OAuth URL, waits for the browser's"
  .. " redirect on the loopback port, and prints the new connection id.",
  [[
Examples:
  {cmd}                       listen on localhost:3000 for up to 5 minutes
  {cmd} --save                also write CONNECTION_ID=... into .env
  {cmd} --no-listen           only print the URL]])
oauth.add_options(parser)

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local cfg = cli.exit_on(cli.config(args, { redirect_uri = args.redirect_uri }))
  cli.exit_on(cli.require_config(cfg, true))
  local redirect = cfg.redirect_uri or DEFAULT_REDIRECT
  cli.say("Notion OAuth test")
  cli.say("  user:         %s  [%s]", cfg.user_id, cfg.source.user_id)
  cli.say("  connector:    %s", CONNECTOR)
  cli.say("  redirect URI: %s  [%s]", redirect, cfg.redirect_uri and cfg.source.redirect_uri or "default")
  cli.say("  API:          %s  (x-api-version %s)", cfg.base_url, cfg.api_version)
  cli.say("  API key:      set  [%s]", cfg.source.api_key)
  if cfg.env_file then cli.say("  env file:     %s", cfg.env_file) end
  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local done, err = oauth.run{ args = args, cfg = cfg, client = client, connector = CONNECTOR, redirect_uri = redirect }
  client:close()
  if not done then return nil, err end
  -- oauth.run has printed how to use the id and list it; only Notion's own next step is left
  if done.credential then
    cli.say("Then use it: %s notion <action> --credential %s (%s notion lists the actions)",
      commands.invocation("run_action"), done.credential.credentialId, commands.invocation("list_actions"))
  end
  return cli.OK
end

cli.main(main)
