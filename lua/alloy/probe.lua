-- alloy.probe: `alloy token --probe`, the Node tool's endpoint search: the token call tried
-- on each known host and version form, documented first, with a table of what each returned.
--
-- M.run(ctx, cfg)      -> results, first (the first variant that gave a token, or nil); with
--                         ctx.args.all, every variant is tried
-- M.failure(results)   -> the failure of the most common result, when none gave a token
local M = {}

-- Monotonic seconds, for timing probe attempts that got no response; lua-system is loaded
-- only by --probe (start-up time matters for the plain call).
local function now()
  local ok, system = pcall(require, "system")
  local clock = ok and (system.monotime or system.gettime) or os.clock
  now = clock
  return clock()
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
  -- one host for both (the EU region's): each form once
  local tried = {}
  local function add(method, host, version, in_path)
    local key = table.concat({ method, host.url, version, tostring(in_path) }, " ")
    if tried[key] then return end
    tried[key] = true
    list[#list + 1] = { method = method, host = host, version = version, in_path = in_path }
  end
  for _, method in ipairs({ "GET", "POST" }) do
    add(method, production, cfg.api_version, false)
    add(method, embedded, cfg.api_version, false)
    for _, host in ipairs({ embedded, production }) do
      for _, v in ipairs(versions) do add(method, host, v, true) end
    end
  end
  return list
end

local function version_text(v)
  if v.in_path then return "path /" .. v.version end
  return "header " .. v.version
end

function M.run(ctx, cfg)
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
function M.failure(results)
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

return M
