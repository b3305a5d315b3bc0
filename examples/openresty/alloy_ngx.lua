-- alloy_ngx: an alloy.so client whose HTTP goes through nginx (ngx.location.capture to an
-- internal proxy_pass location), so a call never blocks the nginx worker.
--
--   local alloy_ngx = require "alloy_ngx"
--   local client = alloy_ngx.new{ api_key = ..., retries = 0 }   -- any alloy.new option
--   local token, res_or_msg, code = client:user_token(user_id)   -- same API as alloy.so
--
-- Each call is one pass: client:prepare builds the request (URL, headers, body) in alloy.so,
-- plain Lua sends it with ngx.location.capture (which yields; a transport called from C could
-- not: "attempt to yield across C-call boundary"), and client:finish turns the answer into the
-- call's usual results (value, res | nil, msg, code, res).  batch() sends with capture_multi.
--
-- Use it where ngx.location.capture works: rewrite, access and content handlers (not
-- init_worker, timers, header/body filters or log).  Timeouts are nginx's
-- (proxy_connect_timeout, proxy_read_timeout in the internal location), not alloy.new's, and
-- nothing is retried (nginx's proxy_next_upstream covers connection errors).
--
-- nginx side (see nginx.conf.in): one internal location per Alloy service, e.g.
--   location /_alloy/embedded/ {
--     internal;
--     rewrite_by_lua_block       { require("alloy_ngx").upstream_rewrite() }
--     header_filter_by_lua_block { require("alloy_ngx").upstream_header_filter() }
--     proxy_pass http://alloy_embedded$alloy_uri;
--   }
-- The rewrite step replaces every header the browser sent (cookies included) with exactly
-- the client's headers (Authorization, x-api-version, Accept, ...), and points the proxy at
-- the request's path and query, unchanged (percent-escapes intact).
local alloy = require "alloy"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local M = {}

-- Pseudo-origins given to alloy.new, mapped to the internal locations.
M.ORIGINS = { embedded = "http://embedded.alloy-ngx.invalid", base = "http://base.alloy-ngx.invalid" }
M.LOCATIONS = { embedded = "/_alloy/embedded/", base = "/_alloy/base/" }

local METHODS = {
  GET = ngx.HTTP_GET, POST = ngx.HTTP_POST, PUT = ngx.HTTP_PUT, DELETE = ngx.HTTP_DELETE,
  PATCH = ngx.HTTP_PATCH, HEAD = ngx.HTTP_HEAD, OPTIONS = ngx.HTTP_OPTIONS,
}

-- A capture's result -> the response client:finish reads | nil, msg.
local function response(location, info, r)
  -- No response header from Alloy at all: nginx itself answered (connect error, timeout).
  local t = info.header_time
  if r.status >= 500 and (t == nil or t == "" or t:match("^[%-,%s:]*$")) then
    return nil, ("no response from Alloy through %s (nginx %d, upstream status %s: unreachable,"
      .. " refused, reset or timed out; see the nginx error log)"):format(
      location, r.status, info.upstream_status or "none")
  end
  if r.truncated then return nil, "alloy response truncated (upstream closed early)" end
  return { status = r.status, headers = r.header, body = r.body or "" }
end

-- Sends prepared requests together -> { {response} | {nil, msg}, ... } in their order.
local function send(self, reqs)
  local out, batch, index = {}, {}, {}
  for i, req in ipairs(reqs) do
    local origin, uri = req.url:match("^(https?://[^/?#]+)(.*)$")
    local location, method = self.routes[origin or ""], METHODS[req.method]
    if not location then
      out[i] = { nil, "alloy_ngx: no internal location for " .. tostring(origin) }
    elseif not method then
      out[i] = { nil, "alloy_ngx: unsupported method " .. tostring(req.method) }
    else
      local info = { uri = uri ~= "" and uri or "/", headers = req.headers, has_body = req.body ~= nil }
      batch[#batch + 1] = { location, { method = method, body = req.body, ctx = { alloy = info } } }
      index[#batch] = i
    end
  end
  local results = #batch > 0 and { ngx.location.capture_multi(batch) } or {}
  for k, b in ipairs(batch) do
    out[index[k]] = { response(b[1], b[2].ctx.alloy, results[k]) }
  end
  return out
end

local Client = {}
Client.__index = Client
Client.__tostring = function(self) return "alloy_ngx(" .. tostring(self.client) .. ")" end

-- One call: client:prepare(op, args... | spec), send, client:finish.
local function call(self, ...)
  local c = self.client
  local req, msg, code, res = c:prepare(...)
  if not req then return nil, msg, code, res end
  local got = send(self, { req })[1]
  return c:finish(req, got[1], got[2])
end

function Client:request(spec) return call(self, spec) end
for _, name in ipairs { "prepare", "finish", "close" } do -- these send nothing
  Client[name] = function(self, ...) return self.client[name](self.client, ...) end
end
for name in pairs(alloy.operations) do -- user_token, get_user, list_credentials, ...
  Client[name] = function(self, ...) return call(self, name, ...) end
end

-- Like alloy.so's batch (opts ignored: every request goes out at once) -> results, n_failures.
function Client:batch(specs)
  local c, reqs, slots, results, failures = self.client, {}, {}, {}, 0
  for i, s in ipairs(specs) do
    local req, msg, code
    if s.op then req, msg, code = c:prepare(s.op, unpack(s.args or {})) else req, msg, code = c:prepare(s) end
    if req then
      reqs[#reqs + 1], slots[#slots + 1] = req, i
    else
      results[i] = { ok = false, error = msg, code = code }
    end
  end
  for k, got in ipairs(send(self, reqs)) do
    local v, res_or_msg, code, res = c:finish(reqs[k], got[1], got[2])
    if v == nil then
      results[slots[k]] = { ok = false, error = res_or_msg, code = code, res = res }
    elseif reqs[k].op then -- value, res
      res_or_msg.ok, res_or_msg.value, results[slots[k]] = true, v, res_or_msg
    else -- res
      v.ok, results[slots[k]] = true, v
    end
  end
  for _, r in ipairs(results) do
    if not r.ok then failures = failures + 1 end
  end
  return results, failures
end

-- opts: alloy.new options (api_key, api_version, ...) plus
--   locations = { embedded = "/_alloy/embedded/", base = "/_alloy/base/" }
-- embedded_url, base_url and transport are set here.
function M.new(opts)
  opts = opts or {}
  local o, routes = {}, {}
  for k, v in pairs(opts) do
    if k ~= "locations" then o[k] = v end
  end
  for service, origin in pairs(M.ORIGINS) do
    routes[origin] = (opts.locations or {})[service] or M.LOCATIONS[service]
  end
  o.embedded_url, o.base_url = M.ORIGINS.embedded, M.ORIGINS.base
  -- Every call goes through prepare/finish: libcurl must never block the worker.
  o.transport = function() return nil, "alloy_ngx: only prepare/finish may send" end
  return setmetatable({ routes = routes, client = alloy.new(o) }, Client)
end

-- rewrite_by_lua in the internal location: exactly the client's headers, the real URI.
function M.upstream_rewrite()
  local a = ngx.ctx.alloy
  if not a then return ngx.exit(ngx.HTTP_NOT_FOUND) end
  ngx.var.alloy_uri = a.uri
  for name in pairs(ngx.req.get_headers(0, true)) do
    if not (a.has_body and name:lower() == "content-length") then ngx.req.clear_header(name) end
  end
  for _, h in ipairs(a.headers) do
    local lname = h[1]:lower()
    if lname ~= "host" and lname ~= "content-length" then ngx.req.set_header(h[1], h[2]) end
  end
end

-- header_filter_by_lua in the internal location: note whether Alloy answered at all.
function M.upstream_header_filter()
  local a = ngx.ctx.alloy
  if not a then return end
  a.upstream_status = ngx.var.upstream_status
  a.header_time = ngx.var.upstream_header_time
end

return M
