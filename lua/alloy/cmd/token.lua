-- alloy token (get_jwt_token.lua, `npm run get-jwt-token`): a user's JWT for Alloy's
-- embedded frontend. Only the token goes to stdout.
local M = {
  summary = "a user's JWT for Alloy's frontend SDK",
  description = "Print a user's JWT for Alloy's embedded frontend (Alloy.setToken). Only the token goes to"
    .. " stdout; a summary (user, endpoint, API version, expiry) goes to stderr.",
  user = true,
  options = {
    { "--embedded-url", "<url>", "Host of the token call; overrides ALLOY_EMBEDDED_URL." },
    { "--base-url", "<url>", "Production host (used by --probe); overrides ALLOY_BASE_URL." },
    { "--api-version", "<yyyy-mm>", "API version; overrides ALLOY_API_VERSION (default 2025-09)." },
    { "--probe", "Try the endpoint variants, documented first, until one works; print a table on stderr and"
      .. " use the token of the one that worked." },
    { "--all", "With --probe: try every variant, even after one worked." },
  },
  examples = {
    { "", "token of ALLOY_USER_ID" },
    { "-u 68c3229752345278627ae373" },
    { "--json", "{token,userId,expiresAt,endpoint,apiVersion}" },
    { "--probe", "try the known variants, documented first, until one works" },
    { "--probe --all", "try all of them and print the whole table" },
    { "--region eu", "on the EU host (every call follows the region)" },
  },
  notes = [[
Hosts: https://production.runalloy.com with the x-api-version header is the documented form
(2025-09); https://embedded.runalloy.com/2023-12 and /2024-03 (version in the path) are the older
documented form, and the EU host exists only in that form; the embedded host without a path
version, and POST on the token path, are not documented.]],
}

-- The last second os.date can show in four digits (9999-12-31T23:59:59Z).
local MAX_TIME = 253402300799

-- Expiry from the token's exp claim: iso string and "in 59m" | nil, why (no claim, or one
-- that is not a time: a server may send 1e300, NaN, a string). An expired token: iso, "5m ago".
local function expiry(alloy, token)
  local timefmt = require "alloy.timefmt"
  local claims = alloy.jwt_claims(token)
  local exp = claims and claims.exp
  if exp == nil then return nil, "the token carries no exp claim" end
  if type(exp) ~= "number" or exp ~= exp or exp < 0 or exp > MAX_TIME then
    return nil, "the token's exp claim is not a time"
  end
  return timefmt.iso(exp), timefmt.relative(exp - os.time()), exp <= os.time()
end

-- The user id the token is for (its userId claim), else what was asked for; and what was
-- typed (a username, say) when that is not the resolved id.
local function resolved(alloy, token, asked)
  local claims = alloy.jwt_claims(token)
  local id = claims and claims.userId
  id = type(id) == "string" and id ~= "" and id or asked
  return id, id ~= asked and asked or nil
end

local function summary(out, user, method, url, version_text, token, alloy)
  local iso, rel, expired = expiry(alloy, token)
  out:say("user:        %s", user)
  out:say("endpoint:    %s %s", method, url)
  out:say("api version: %s", version_text)
  if iso then
    out:say("expires:     %s (%s)", iso, rel)
    if expired then out:warn("the token has already expired (%s, %s)", iso, rel) end
  else
    out:say("expires:     unknown (%s)", rel)
  end
  return iso
end

-- The token, or with --json the document (expiresAt null when unknown).
local function print_token(ctx, doc)
  if ctx.args.json then
    local json = require "alloy.json"
    doc.expiresAt = doc.expiresAt or json.null
    if doc.probes then doc.probes = json.array(doc.probes) end
    ctx.out:out(json.encode(doc) .. "\n")
  else
    ctx.out:out(doc.token .. "\n")
  end
end

-- The URL called, without its query (the token call repeats userId there): the endpoint.
local function endpoint(url)
  return url and (url:gsub("%?.*$", ""))
end

function M.run(ctx)
  local cfg = ctx:config{ user = true }
  local alloy = require "alloy"
  if ctx.args.probe then
    local probe = require "alloy.probe"
    local results, first = probe.run(ctx, cfg)
    if not first then return nil, probe.failure(results) end
    local v = first.variant
    local url = endpoint(first.res.url) or v.host.url
    ctx.out:say("first working variant: #%d %s %s (%s)", first.row.n, v.method, url,
      v.in_path and ("version in the path, /" .. v.version) or ("x-api-version: " .. v.version .. " header"))
    if v.method == "GET" and not v.in_path and v.host.service == "base" and v.host.url ~= cfg.embedded_url then
      ctx.out:say("to make it the default: ALLOY_EMBEDDED_URL=%s", v.host.url)
    end
    local iso = summary(ctx.out, cfg.user_id, v.method, url,
      v.in_path and (v.version .. " (in the path)") or (v.version .. " (x-api-version header)"), first.token, alloy)
    local id, typed = resolved(alloy, first.token, cfg.user_id)
    print_token(ctx, { token = first.token, userId = id, user = typed, expiresAt = iso, endpoint = url,
                       apiVersion = v.version, method = v.method, probes = results })
    return 0
  end

  local token, res = ctx:call("user_token", cfg.user_id)
  local url = endpoint(res.url) or (cfg.embedded_url .. "/users/" .. cfg.user_id .. "/token")
  local iso = summary(ctx.out, cfg.user_id, "GET", url, cfg.api_version .. " (x-api-version header)", token, alloy)
  local id, typed = resolved(alloy, token, cfg.user_id)
  print_token(ctx, { token = token, userId = id, user = typed, expiresAt = iso, endpoint = url,
                     apiVersion = cfg.api_version })
  return 0
end

return M
