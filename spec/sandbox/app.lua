-- nginx entry points for the sandbox (see nginx.conf): init and handle.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local faults = require "sandbox.faults"
local api = require "sandbox.api"
local control = require "sandbox.control"

local M = {}

local LOG_BODY_MAX = 65536

-- Runs in the master (as the starting user) so config.json may be private.
function M.init(config_path)
  local f = assert(io.open(config_path, "rb"))
  local cfg = assert(util.decode(f:read("*a")), "bad sandbox config")
  f:close()
  state.cfg = cfg
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

function M.handle()
  local method = ngx.req.get_method()
  local raw_path, query = ngx.var.request_uri:match("^([^?]*)%??(.*)$")

  if raw_path:sub(1, 11) == "/__sandbox/" then
    return control.handle(method, raw_path:sub(12), read_body())
  end
  if ngx.var.sandbox_role == "control" then
    return util.message(404, "This listener serves only /__sandbox/")
  end

  local h, body = headers(), read_body()
  state.log[#state.log + 1] = {
    method = method, path = raw_path, query = query, headers = h, time = ngx.now(),
    connection = tonumber(ngx.var.connection), protocol = ngx.var.server_protocol,
    body = body and body:sub(1, LOG_BODY_MAX) or "",
    body_truncated = body ~= nil and #body > LOG_BODY_MAX or nil,
  }

  local f = faults.take(method, raw_path, body)
  if f and faults.apply(f) ~= false then return end

  local segs = {}
  for s in raw_path:gmatch("[^/]+") do segs[#segs + 1] = unescape(s) end

  if #segs == 5 and segs[1] == "api" and segs[2] == "strategy" and segs[3] == "connector"
      and segs[5] == "authorize" then
    if method ~= "GET" then return util.message(405, "Method not allowed", { Allow = "GET" }) end
    return authorize(segs[4])
  end

  if not authorized(h) then return util.message(401, "Invalid or missing authentication") end

  -- Version: optional leading /YYYY-MM path segment, else the x-api-version header.
  local version
  if segs[1] and segs[1]:match("^%d%d%d%d%-%d%d$") then
    version = table.remove(segs, 1)
  else
    version = h["x-api-version"]
  end
  if not version then
    return util.message(400, "Missing API version: send the x-api-version header "
      .. "(e.g. 2025-09) or prefix the path with /2025-09")
  end
  if not state.versions[version] then
    return util.message(400, "Unsupported API version '" .. version
      .. "'; supported: 2023-12, 2024-03, 2025-09")
  end

  return api.route({ method = method, headers = h, body = body, version = version }, segs)
end

return M
