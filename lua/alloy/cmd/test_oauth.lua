-- alloy test-oauth (test_oauth.lua, `npm run test-oauth`): alloy connect preset for Notion,
-- showing the configuration it uses (never the key) and the next steps.
local config = require "alloy.config"
local connect = require "alloy.connect"
local oauth = require "alloy.oauth"

local CONNECTOR = "notion"


local M = {
  summary = "the OAuth flow preset for Notion",
  description = "Connect Notion for a user: {cmd:connect} notion with the redirect URI REDIRECT_URI (default "
    .. config.DEFAULTS.redirect_uri .. "). Prints the OAuth URL, waits for the browser's redirect on the"
    .. " loopback port, and prints the new connection id.",
  user = true,
  options = connect.OPTIONS,
  examples = {
    { "", "listen on localhost:3000 for up to 5 minutes" },
    { "--save", "also write CONNECTION_ID=... into .env" },
    { "--replace", "replace the user's Notion connection once the new one is confirmed" },
    { "--no-listen", "only print the URL" },
  },
}

function M.run(ctx)
  local cfg = ctx:config{ user = true }
  local out = ctx.out
  local redirect = cfg.redirect_uri or config.DEFAULTS.redirect_uri
  out:say("Notion OAuth test")
  out:say("  user:         %s  [%s]", cfg.user_id, cfg.source.user_id)
  out:say("  connector:    %s", CONNECTOR)
  out:say("  redirect URI: %s  [%s]", redirect, cfg.redirect_uri and cfg.source.redirect_uri or "default")
  out:say("  API:          %s  (x-api-version %s)", cfg.base_url, cfg.api_version)
  out:say("  API key:      set  [%s]", cfg.source.api_key)
  if cfg.env_file then out:say("  env file:     %s", cfg.env_file) end
  if cfg.redirect_uri then ctx:check(oauth.settings(ctx.args, cfg.redirect_uri)) end
  local done, err = connect.run{ ctx = ctx, connector = CONNECTOR, redirect_uri = function() return redirect end }
  if not done then return nil, err end
  -- the flow has printed how to use the id and list it; only Notion's own next step is left
  if done.credential then
    out:say("Then use it: %s (%s lists the actions)",
      ctx:command("run", CONNECTOR, "<action>", "--credential", done.credential.credentialId),
      ctx:command("actions", CONNECTOR))
  end
  return 0
end

return M
