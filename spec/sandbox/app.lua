-- nginx entry points for the sandbox (see nginx.conf): init and handle.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local faults = require "sandbox.faults"
local routes = require "sandbox.routes"
local files = require "sandbox.files"
local control = require "sandbox.control"

local M = {}

local LOG_BODY_MAX = 65536

-- Runs in the master (as the starting user) so config.json may be private.
function M.init(config_path)
  local f = assert(io.open(config_path, "rb"))
  local cfg = assert(util.decode(f:read("*a")), "bad sandbox config")
  f:close()
  state.cfg = cfg
  control.set_defaults(cfg.defaults)
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file() -- only if it outgrew client_body_buffer_size
  if file then
    local f = io.open(file, "rb")
    if f then body = f:read("*a") f:close() end
  end
  return body
end

local function headers()
  local h = {}
  for k, v in pairs(ngx.req.get_headers(200)) do
    h[k] = type(v) == "table" and table.concat(v, ", ") or v
  end
  return h
end

local function authorized(h)
  local value = h.authorization
  local scheme, key = (value or ""):match("^%s*(%a+)%s+(%S+)%s*$")
  return scheme and scheme:lower() == "bearer" and key == state.cfg.api_key
end

local function html(status, text)
  ngx.status = status
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.print("<!doctype html><html><head><title>Alloy sandbox</title></head><body><p>",
            text, "</p></body></html>\n")
  return ngx.exit(ngx.HTTP_OK)
end

-- The browser side of the OAuth flow: GET oauthUrl (no API key).
local function authorize(connector_id)
  local args = ngx.req.get_uri_args()
  local token = type(args.token) == "string" and args.token or ""
  local flow = state.oauth[token]
  if not flow or flow.connector ~= connector_id then
    return html(400, "Invalid or expired authorization link.")
  end
  state.oauth[token] = nil -- single use, like an OAuth state value
  local u = state.find_user(flow.userId)
  if not u then return html(400, "The user for this authorization link no longer exists.") end
  local mode, extra = state.settings.oauth_redirect, nil
  if mode == "error" then
    extra = "success=false&error=access_denied"
  else
    local cred = state.create_credential(u, state.connector(connector_id), flow)
    if mode == "success" then extra = "credentialId=" .. cred.credentialId .. "&success=true" end
  end
  local location = flow.redirectUri
  if extra then location = location .. (location:find("?", 1, true) and "&" or "?") .. extra end
  return ngx.redirect(location, 302)
end

-- The listener a request came in on: "api", "embedded", "s3" or "control" (nginx.conf).
function M.handle()
  local role = ngx.var.sandbox_role
  local method = ngx.req.get_method()
  local raw_path, query = ngx.var.request_uri:match("^([^?]*)%??(.*)$")

  -- The control plane lives on the API listener (or its own one beside TLS listeners): the
  -- other hosts know nothing of it, as the real ones would not.
  if (role == "api" or role == "control") and raw_path:sub(1, 11) == "/__sandbox/" then
    return control.handle(method, raw_path:sub(12), read_body())
  end
  if role == "control" then
    return util.message(404, "This listener serves only /__sandbox/")
  end

  local h, body = headers(), read_body()
  state.log[#state.log + 1] = {
    host = role, method = method, path = raw_path, query = query, headers = h, time = ngx.now(),
    connection = tonumber(ngx.var.connection), protocol = ngx.var.server_protocol,
    body = body and body:sub(1, LOG_BODY_MAX) or "",
    body_truncated = body ~= nil and #body > LOG_BODY_MAX or nil,
  }

  if role ~= "s3" and faults.rate_limited(role) then return end
  local f = faults.take(role, method, raw_path, body)
  if f and faults.apply(f) ~= false then return end

  if role == "s3" then return files.s3_put(method, raw_path, h, body) end

  local segs = {}
  for s in raw_path:gmatch("[^/]+") do segs[#segs + 1] = unescape(s) end

  if role == "api" and #segs == 5 and segs[1] == "api" and segs[2] == "strategy"
      and segs[3] == "connector" and segs[5] == "authorize" then
    if method ~= "GET" then return util.message(405, "Method not allowed", { Allow = "GET" }) end
    return authorize(segs[4])
  end

  if not authorized(h) then return util.message(401, "Invalid or missing authentication") end

  return routes.dispatch({ method = method, headers = h, body = body, path = raw_path,
                           args = ngx.req.get_uri_args(100), host = role }, segs)
end

return M
