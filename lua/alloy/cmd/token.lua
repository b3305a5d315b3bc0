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
    { "--region eu", "the token call on the EU embedded host" },
  },
  notes = [[
Hosts: https://production.runalloy.com with the x-api-version header is the documented form
(2025-09); https://embedded.runalloy.com/2023-12 and /2024-03 (version in the path) are the older
documented form, and the EU host exists only in that form; the embedded host without a path
version, and POST on the token path, are not documented.]],
}

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

local function probe(ctx, cfg)
  local out, clients = ctx.out, {}
  local results, first = {}, nil
  out:say("probing %s for user %s (retries off, timeout %gs each):", "token endpoints", cfg.user_id, cfg.timeout)
  out:say("%3s  %-6s %-10s %-16s %-18s %8s  %s", "#", "method", "host", "version", "result", "time", "url")
  for i, v in ipairs(variants(cfg)) do
    clients[v.version] = clients[v.version] or ctx:new_client{ api_version = v.version, retries = 0 }
    local t0 = now()
    local token, res_or_msg, code, res = clients[v.version]:user_token(cfg.user_id,
      { service = v.host.service, version_in_path = v.in_path, method = v.method })
    local elapsed = now() - t0
    local r = { n = i, method = v.method, host = v.host.url, hostName = v.host.name,
                version = v.version, versionIn = v.in_path and "path" or "header" }
    if token then
      res = res_or_msg
      r.status, r.ok, r.result, r.url = res.status, true, res.status .. " token", res.url
      if not first then first = { variant = v, token = token, res = res, row = r } end
    else
      r.ok, r.code, r.status, r.result, r.message = false, code, res and res.status or nil, code or "error", res_or_msg
    end
    if res and res.time then elapsed = res.time end
    r.timeMs = math.floor(elapsed * 1000 + 0.5)
    results[#results + 1] = r
    out:say("%3d  %-6s %-10s %-16s %-18s %5d ms  %s", i, v.method, v.host.name, version_text(v), r.result, r.timeMs,
      v.host.url)
    if first and not ctx.args.all then break end
  end
  return results, first
end

-- --probe: no variant worked. The failure of the most common result (ties: the earliest).
local function probe_failure(results)
  local count, best = {}, results[1]
  for _, r in ipairs(results) do
    count[r.result] = (count[r.result] or 0) + 1
    if count[r.result] > count[best.result] then best = r end
  end
  local failure = require "alloy.failure"
  local f = failure.api(("no variant returned a token (%d tried; most common: %s)"):format(#results,
    best.message or best.result), best.code, nil, "user_token")
  return f
end

local function print_token(ctx, doc)
  if ctx.args.json then
    ctx.out:out(require("alloy.json").encode(doc) .. "\n")
  else
    ctx.out:out(doc.token .. "\n")
  end
end

function M.run(ctx)
  local cfg = ctx:config{ user = true }
  local alloy = require "alloy"
  local json = require "alloy.json"
  if ctx.args.probe then
    local results, first = probe(ctx, cfg)
    if not first then return nil, probe_failure(results) end
    local v = first.variant
    local url = first.res.url or v.host.url
    ctx.out:say("first working variant: #%d %s %s (%s)", first.row.n, v.method, url,
      v.in_path and ("version in the path, /" .. v.version) or ("x-api-version: " .. v.version .. " header"))
    if v.method == "GET" and not v.in_path and v.host.service == "base" and v.host.url ~= cfg.embedded_url then
      ctx.out:say("to make it the default: ALLOY_EMBEDDED_URL=%s", v.host.url)
    end
    local iso = summary(ctx.out, cfg.user_id, v.method, url,
      v.in_path and (v.version .. " (in the path)") or (v.version .. " (x-api-version header)"), first.token, alloy)
    local id, typed = resolved(alloy, first.token, cfg.user_id)
    print_token(ctx, { token = first.token, userId = id, user = typed, expiresAt = iso or json.null, endpoint = url,
                       apiVersion = v.version, method = v.method, probes = json.array(results) })
    return 0
  end

  local token, res = ctx:call("user_token", cfg.user_id)
  local url = res.url or (cfg.embedded_url .. "/users/" .. cfg.user_id .. "/token")
  local iso = summary(ctx.out, cfg.user_id, "GET", url, cfg.api_version .. " (x-api-version header)", token, alloy)
  local id, typed = resolved(alloy, token, cfg.user_id)
  print_token(ctx, { token = token, userId = id, user = typed, expiresAt = iso or json.null, endpoint = url,
                     apiVersion = cfg.api_version })
  return 0
end

return M
