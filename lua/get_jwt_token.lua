-- get_jwt_token.lua: print a user's Alloy JWT for the embedded frontend (`npm run get-jwt-token`).
local d = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = d .. "/?.lua;" .. package.path; require "alloy.paths"

local cli = require "alloy.cli"

local parser = cli.parser("get_jwt_token.lua",
  "Print a user's JWT for Alloy's embedded frontend (Alloy.setToken). Only the token goes to stdout;"
  .. " a summary (user, endpoint, API version, expiry) goes to stderr.",
  [[
Examples:
  {cmd}                       token of ALLOY_USER_ID
  TOKEN=$({cmd} -u 68c3229752345278627ae373)
  {cmd} --json                {token,userId,expiresAt,endpoint,apiVersion}
  {cmd} --probe               try the known variants, documented first, until one works
  {cmd} --probe --all         try all of them and print the whole table
  {cmd} --region eu           the token call on the EU embedded host

Hosts: https://production.runalloy.com with the x-api-version header is the documented form
(2025-09); https://embedded.runalloy.com/2023-12 and /2024-03 (version in the path) are the older
documented form, and the EU host exists only in that form; the embedded host without a path
version, and POST on the token path, are not documented.]])
parser:option("--embedded-url", "Host of the token call; overrides ALLOY_EMBEDDED_URL."):argname("<url>")
parser:option("--base-url", "Production host (used by --probe); overrides ALLOY_BASE_URL."):argname("<url>")
parser:option("--api-version", "API version; overrides ALLOY_API_VERSION (default 2025-09)."):argname("<yyyy-mm>")
parser:flag("--probe", "Try the endpoint variants, documented first, until one works; print a table on"
  .. " stderr and use the token of the one that worked.")
parser:flag("--all", "With --probe: try every variant, even after one worked.")
parser:option("--region", "eu: the token call goes to the EU host " .. require("alloy.config").REGIONS.eu
  .. " (unless --embedded-url / ALLOY_EMBEDDED_URL say otherwise); overrides ALLOY_REGION."):argname("<region>")

-- Monotonic seconds, for timing probe attempts that got no response; lua-system is loaded
-- only by --probe (start-up time matters for the plain call).
local function now()
  local ok, system = pcall(require, "system")
  local clock = ok and (system.monotime or system.gettime) or os.clock
  now = clock
  return clock()
end

-- The last second os.date can show in four digits (9999-12-31T23:59:59Z).
local MAX_TIME = 253402300799

-- Expiry from the token's exp claim: iso string and "in 59m" | nil, why (no claim, or one
-- that is not a time: a server may send 1e300, NaN, a string). An expired token: iso, "5m ago".
local function expiry(alloy, token)
  local claims = alloy.jwt_claims(token)
  local exp = claims and claims.exp
  if exp == nil then return nil, "the token carries no exp claim" end
  if type(exp) ~= "number" or exp ~= exp or exp < 0 or exp > MAX_TIME then
    return nil, "the token's exp claim is not a time"
  end
  return cli.iso_time(exp), cli.relative(exp - os.time()), exp <= os.time()
end

-- The user id the token is for (its userId claim), else what was asked for.
local function resolved(alloy, token, asked)
  local claims = alloy.jwt_claims(token)
  local id = claims and claims.userId
  return type(id) == "string" and id ~= "" and id or asked
end

-- What the user typed (a username, say), when it is not the resolved id.
local function typed(alloy, token, asked)
  if resolved(alloy, token, asked) ~= asked then return asked end
  return nil
end

local function summary(user, method, url, version_text, token, alloy)
  local iso, rel, expired = expiry(alloy, token)
  cli.say("user:        %s", user)
  cli.say("endpoint:    %s %s", method, url)
  cli.say("api version: %s", version_text)
  if iso then
    cli.say("expires:     %s (%s)", iso, rel)
    if expired then cli.warn("the token has already expired (%s, %s)", iso, rel) end
  else
    cli.say("expires:     unknown (%s)", rel)
  end
  return iso
end

-- The variants --probe tries, documented first: the production host with the x-api-version
-- header (the 2025-09 reference), the embedded host with the header (seen working, not
-- documented), the embedded host with the version in the path (the older documented form),
-- the production host with it in the path; then the same with POST (not documented).
local function variants(cfg)
  local list = {}
  local versions, seen = {}, {}
  for _, v in ipairs({ cfg.api_version, "2025-09", "2024-03", "2023-12" }) do
    if not seen[v] then seen[v] = true; versions[#versions + 1] = v end
  end
  local production = { service = "base", name = "production", url = cfg.base_url }
  local embedded = { service = "embedded", name = "embedded", url = cfg.embedded_url }
  for _, method in ipairs({ "GET", "POST" }) do
    list[#list + 1] = { method = method, host = production, version = cfg.api_version, in_path = false }
    list[#list + 1] = { method = method, host = embedded, version = cfg.api_version, in_path = false }
    for _, host in ipairs({ embedded, production }) do
      for _, v in ipairs(versions) do
        list[#list + 1] = { method = method, host = host, version = v, in_path = true }
      end
    end
  end
  return list
end

local function version_text(v)
  if v.in_path then return "path /" .. v.version end
  return "header " .. v.version
end

local function probe(cfg, args)
  local clients = {}
  local function client_for(version)
    if not clients[version] then
      clients[version] = cli.exit_on(cli.client(cfg, { api_version = version, retries = 0, debug = args.verbose }))
    end
    return clients[version]
  end
  local results, first = {}, nil
  cli.say("probing %s for user %s (retries off, timeout %gs each):", "token endpoints", cfg.user_id, cfg.timeout)
  cli.say("%3s  %-6s %-10s %-16s %-18s %8s  %s", "#", "method", "host", "version", "result", "time", "url")
  for i, v in ipairs(variants(cfg)) do
    local client = client_for(v.version)
    local t0 = now()
    local token, res_or_msg, code, res = client:user_token(cfg.user_id,
      { service = v.host.service, version_in_path = v.in_path, method = v.method })
    local elapsed = now() - t0
    local r = { n = i, method = v.method, host = v.host.url, hostName = v.host.name,
                version = v.version, versionIn = v.in_path and "path" or "header" }
    if token then
      res = res_or_msg
      r.status, r.ok = res.status, true
      r.result = res.status .. " token"
      r.url = res.url
      if res.time then elapsed = res.time end
      if not first then first = { variant = v, token = token, res = res, row = r } end
    else
      r.ok = false
      r.code = code
      r.status = res and res.status or nil
      r.result = code or "error"
      r.message = res_or_msg
      if res and res.time then elapsed = res.time end
    end
    r.timeMs = math.floor(elapsed * 1000 + 0.5)
    results[#results + 1] = r
    cli.say("%3d  %-6s %-10s %-16s %-18s %5d ms  %s", i, v.method, v.host.name, version_text(v), r.result, r.timeMs,
      v.host.url)
    if first and not args.all then break end
  end
  for _, c in pairs(clients) do c:close() end
  return results, first
end

local function main()
  local args = cli.exit_on(cli.parse(parser, arg))
  local cfg = cli.exit_on(cli.config(args, {
    embedded_url = args.embedded_url, base_url = args.base_url, api_version = args.api_version,
    region = args.region,
  }))
  cli.exit_on(cli.require_config(cfg, true))
  local alloy = require "alloy" -- loaded by cli.config

  if args.probe then
    local results, first = probe(cfg, args)
    if not first then
      -- the hint follows the most common failure (ties: the earliest)
      local count, best = {}, results[1]
      for _, r in ipairs(results) do
        count[r.result] = (count[r.result] or 0) + 1
        if count[r.result] > count[best.result] then best = r end
      end
      return nil, require("alloy.failure").new(("no variant returned a token (%d tried; most common: %s)")
        :format(#results, best.message or best.result),
        require("alloy.hints").for_failure(best.code, best.message, { user_id = cfg.user_id }))
    end
    local v = first.variant
    cli.say("first working variant: #%d %s %s (%s)", first.row.n, v.method, first.res.url or v.host.url,
      v.in_path and ("version in the path, /" .. v.version) or ("x-api-version: " .. v.version .. " header"))
    if v.method == "GET" and not v.in_path and v.host.service == "base" and v.host.url ~= cfg.embedded_url then
      cli.say("to make it the default: ALLOY_EMBEDDED_URL=%s", v.host.url)
    end
    local iso = summary(cfg.user_id, v.method, first.res.url or v.host.url,
      v.in_path and (v.version .. " (in the path)") or (v.version .. " (x-api-version header)"), first.token, alloy)
    if args.json then
      cli.out(cli.json({
        token = first.token, userId = resolved(alloy, first.token, cfg.user_id), expiresAt = iso or cli.null,
        user = typed(alloy, first.token, cfg.user_id),
        endpoint = first.res.url or v.host.url, apiVersion = v.version, method = v.method,
        probes = cli.array(results),
      }) .. "\n")
    else
      cli.out(first.token .. "\n")
    end
    return cli.OK
  end

  local client = cli.exit_on(cli.client(cfg, { debug = args.verbose }))
  local token, res_or_msg, code, fres = client:user_token(cfg.user_id)
  if not token then
    client:close()
    return nil, require("alloy.failure").api(res_or_msg, code, fres, { user_id = cfg.user_id, url = cfg.embedded_url })
  end
  local res = res_or_msg
  local url = res.url or (cfg.embedded_url .. "/users/" .. cfg.user_id .. "/token")
  local iso = summary(cfg.user_id, "GET", url, cfg.api_version .. " (x-api-version header)", token, alloy)
  client:close()
  if args.json then
    cli.out(cli.json({
      token = token, userId = resolved(alloy, token, cfg.user_id), user = typed(alloy, token, cfg.user_id),
      expiresAt = iso or cli.null,
      endpoint = url, apiVersion = cfg.api_version,
    }) .. "\n")
  else
    cli.out(token .. "\n")
  end
  return cli.OK
end

cli.main(main)
