-- alloy_token: GET /alloy/token -> {"token": "<JWT>", "expiresAt": "<ISO 8601>"}
--
-- The browser asks your backend for the user's Alloy JWT (for Alloy.setToken); this handler
-- mints it with the API key that never leaves the server, and caches it per user in a
-- lua_shared_dict until `refresh_margin` seconds before its exp claim.  The Alloy call goes
-- through alloy_ngx (ngx.location.capture to an internal proxy_pass location), so a slow
-- Alloy never blocks the worker.  Concurrent misses for one user share one Alloy call.
--
-- nginx.conf (see nginx.conf.in beside this file; serve.lua runs it):
--   env ALLOY_API_KEY;                       # main context: lets Lua read the variable
--   lua_shared_dict alloy_tokens 1m;
--   init_by_lua_block { require("alloy_token").init{ refresh_margin = 60 } }
--   location = /alloy/token {
--     set $alloy_user $arg_user;             # DEMO ONLY: take the user from your session
--     content_by_lua_block { require("alloy_token").handle() }
--   }
--
-- Responses (always JSON, Cache-Control: no-store; X-Alloy-Token-Cache: HIT or MISS):
--   200 {"token", "expiresAt"}
--   400 {"error":"missing_user"|"bad_user", "message"}      no/odd user id
--   404 {"error":"unknown_user", "message"}                 Alloy does not know the user
--   405 {"error":"method_not_allowed"}
--   502 {"error":"alloy_unavailable", "code", "message"}    Alloy failed or is unreachable
local cjson = require "cjson.safe"

local M = {}

local conf = {
  dict = "alloy_tokens",     -- lua_shared_dict name
  refresh_margin = 60,       -- seconds before exp when a cached token is no longer handed out
  lock_timeout = 15,         -- seconds a miss waits for another request's call for the same user
  user_var = "alloy_user",   -- nginx variable holding the (trusted) user id
  api_version = nil,         -- default: ALLOY_API_VERSION, else alloy.so's default
  timeout = 30,
}

local client -- per worker, created on first use

-- init_by_lua (master): settings, the API key from the environment, and an early
-- `require "alloy"` so a wrong lua_package_cpath fails at startup, not on the first request.
function M.init(opts)
  for k, v in pairs(opts or {}) do conf[k] = v end
  local key = conf.api_key or os.getenv("ALLOY_API_KEY")
  if not key or key == "" then
    error("alloy_token: ALLOY_API_KEY is not set (export it and add `env ALLOY_API_KEY;` to nginx.conf)")
  end
  conf.api_key = key
  local v = os.getenv("ALLOY_API_VERSION")
  if not conf.api_version and v and v ~= "" then conf.api_version = v end
  require "alloy"
  require "alloy_ngx"
end

local function get_client()
  if not client then
    client = require("alloy_ngx").new {
      api_key = conf.api_key, api_version = conf.api_version, timeout = conf.timeout,
      locations = conf.locations,
    }
  end
  return client
end

local function send(status, doc, cache)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  if cache then ngx.header["X-Alloy-Token-Cache"] = cache end
  ngx.print(type(doc) == "string" and doc or cjson.encode(doc))
  return ngx.exit(status)
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

-- One Alloy call: -> json body, exp | nil, status, doc
local function mint(user)
  local alloy = require "alloy"
  local token, res_or_msg, code = get_client():user_token(user)
  if not token then
    if code == "HTTP_404" or (code == "HTTP_400" and tostring(res_or_msg):lower():find("valid id", 1, true)) then
      ngx.log(ngx.WARN, "alloy_token: ", res_or_msg)
      return nil, 404, { error = "unknown_user", message = "Alloy does not know this user" }
    end
    ngx.log(ngx.ERR, "alloy_token: token for user ", user, " failed: ", res_or_msg)
    return nil, 502, { error = "alloy_unavailable", code = code, message = res_or_msg }
  end
  local claims = alloy.jwt_claims(token)
  local exp = claims and tonumber(claims.exp)
  return cjson.encode { token = token, expiresAt = exp and iso(exp) or cjson.null }, exp
end

-- Waits for another request that is minting this user's token: body | nil.
local function wait_for(dict, key, lock)
  local deadline = ngx.now() + conf.lock_timeout
  local delay = 0.005
  repeat
    ngx.sleep(delay)
    delay = math.min(delay * 2, 0.1)
    local body = dict:get(key)
    if body then return body end
  until not dict:get(lock) or ngx.now() >= deadline
  return nil
end

function M.handle()
  if ngx.req.get_method() ~= "GET" then
    ngx.header["Allow"] = "GET"
    return send(405, { error = "method_not_allowed", message = "use GET" })
  end
  local user = ngx.var[conf.user_var]
  user = user and ngx.unescape_uri(user) or ""
  if user == "" then
    return send(400, { error = "missing_user", message = "no user id (see $" .. conf.user_var .. ")" })
  end
  if #user > 128 or user:find("[%c%s/\\]") then
    return send(400, { error = "bad_user", message = "not a user id" })
  end

  local dict = ngx.shared[conf.dict]
  if not dict then error("alloy_token: no lua_shared_dict " .. conf.dict) end
  local key, lock = "token:" .. user, "lock:" .. user
  local body = dict:get(key)
  if body then return send(200, body, "HIT") end

  -- Single flight: the first miss mints, the others wait for its result.
  local mine = dict:add(lock, true, conf.lock_timeout)
  if not mine then
    body = wait_for(dict, key, lock)
    if body then return send(200, body, "HIT") end
  end
  local ok, minted, exp_or_status, doc = pcall(mint, user)
  if ok and minted and exp_or_status then
    local ttl = exp_or_status - ngx.now() - conf.refresh_margin
    if ttl >= 0.5 then dict:set(key, minted, ttl) end
  end
  if mine then dict:delete(lock) end -- after the set: waiters find the token
  if not ok then error(minted, 0) end
  if not minted then return send(exp_or_status, doc) end
  return send(200, minted, "MISS")
end

return M
