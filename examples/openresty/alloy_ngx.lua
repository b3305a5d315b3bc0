-- alloy_ngx: an alloy.so client whose HTTP goes through nginx (ngx.location.capture to an
-- internal proxy_pass location), so a call never blocks the nginx worker.
--
--   local alloy_ngx = require "alloy_ngx"
--   local client = alloy_ngx.new{ api_key = ..., retries = 0 }   -- any alloy.new option
--   local token, res_or_msg, code = client:user_token(user_id)   -- same API as alloy.so
--
-- Why two passes: alloy.so calls its `transport` from C, and LuaJIT cannot yield across a C
-- call, while ngx.location.capture must yield ("attempt to yield across C-call boundary").
-- So every method runs twice, both times synchronously: pass 1 with a transport that only
-- records the requests the client wants to send; then those requests go out through
-- ngx.location.capture(_multi) from plain Lua (yielding is fine here); pass 2 replays the
-- responses to the same call, which turns them into its usual results (value, res or
-- nil, msg, code, res).  Building a request twice costs microseconds; the C module stays
-- the one place that knows paths, headers, JSON and error codes.
--
-- Use it where ngx.location.capture works: rewrite, access and content handlers (not
-- init_worker, timers, header/body filters or log).  Timeouts are nginx's
-- (proxy_connect_timeout, proxy_read_timeout in the internal location), not alloy.new's.
--
-- nginx side (see nginx.conf): one internal location per Alloy service, e.g.
--   location /_alloy/embedded/ {
--     internal;
--     rewrite_by_lua_block       { require("alloy_ngx").upstream_rewrite() }
--     header_filter_by_lua_block { require("alloy_ngx").upstream_header_filter() }
--     proxy_pass http://alloy_embedded$alloy_uri;
--   }
-- The rewrite step replaces every header the browser sent (cookies included) with exactly
-- the client's headers (Authorization, x-api-version, Accept, ...), and points the proxy at
-- the request's path and query, unchanged (percent-escapes intact).
local M = {}

-- Pseudo-origins given to alloy.new; the transport maps them to internal locations.
M.ORIGINS = { embedded = "http://embedded.alloy-ngx.invalid", base = "http://base.alloy-ngx.invalid" }
M.LOCATIONS = { embedded = "/_alloy/embedded/", base = "/_alloy/base/" }

local DEFERRED = "alloy_ngx: deferred (pass 1 records the request)"

local METHODS = {
  GET = ngx.HTTP_GET, POST = ngx.HTTP_POST, PUT = ngx.HTTP_PUT, DELETE = ngx.HTTP_DELETE,
  PATCH = ngx.HTTP_PATCH, HEAD = ngx.HTTP_HEAD, OPTIONS = ngx.HTTP_OPTIONS,
}

local unpack = table.unpack or unpack -- luacheck: ignore 143
local function pack(...) return { n = select("#", ...), ... } end

-- The capture options for one recorded request, or nil, msg.
local function capture_args(self, req)
  local origin, rest = req.url:match("^(https?://[^/?#]+)(.*)$")
  local location = origin and self.routes[origin]
  if not location then return nil, "alloy_ngx: no internal location for " .. tostring(origin) end
  local method = METHODS[req.method]
  if not method then return nil, "alloy_ngx: unsupported method " .. tostring(req.method) end
  if rest == "" then rest = "/" end
  return { location, {
    method = method, body = req.body,
    ctx = { alloy = { uri = rest, headers = req.headers, has_body = req.body ~= nil } },
  } }
end

-- Capture result -> what an alloy transport returns.
local function reply(args, r)
  local info = args[2].ctx.alloy
  -- No response header from Alloy at all: nginx itself answered (connect error, timeout).
  local no_upstream = info.header_time == nil or info.header_time == "" or info.header_time:match("^[%-,%s:]*$")
  if r.status >= 500 and no_upstream then
    return { err = ("no response from Alloy through %s (nginx %d, upstream status %s: unreachable,"
      .. " refused, reset or timed out; see the nginx error log)"):format(
      args[1], r.status, info.upstream_status or "none") }
  end
  if r.truncated then return { err = "alloy response truncated (upstream closed early)" } end
  return { res = { status = r.status, headers = r.header, body = r.body or "" } }
end

local function send_all(self, reqs)
  local replies, batch, index = {}, {}, {}
  for i, req in ipairs(reqs) do
    local args, err = capture_args(self, req)
    if args then
      batch[#batch + 1], index[#batch + 1] = args, i
    else
      replies[i] = { err = err }
    end
  end
  local results
  if #batch == 1 then
    results = { ngx.location.capture(batch[1][1], batch[1][2]) }
  elseif #batch > 1 then
    results = { ngx.location.capture_multi(batch) }
  end
  for k, args in ipairs(batch) do
    replies[index[k]] = reply(args, results[k])
  end
  return replies
end

local Client = {}

-- Runs one client method through the two passes. Not reentrant, and need not be: both passes
-- are synchronous, so another request's call can only run between them, with its own state.
function Client:_call(name, ...)
  local c = self._client
  local reqs = {}
  self._state = { mode = "record", reqs = reqs }
  local first = pack(pcall(c[name], c, ...))
  self._state = nil
  if not first[1] then error(first[2], 2) end
  if #reqs == 0 then return unpack(first, 2, first.n) end -- nothing was sent (e.g. a bad id)

  local replies = send_all(self, reqs)
  self._state = { mode = "replay", reqs = reqs, replies = replies, i = 0 }
  local second = pack(pcall(c[name], c, ...))
  self._state = nil
  if not second[1] then error(second[2], 2) end
  return unpack(second, 2, second.n)
end

local function transport(self, req)
  local st = rawget(self, "_state")
  if not st then return nil, "alloy_ngx: client used outside a call" end
  if st.mode == "record" then
    st.reqs[#st.reqs + 1] = req
    return nil, DEFERRED
  end
  st.i = st.i + 1
  local want, rep = st.reqs[st.i], st.replies[st.i]
  if not want or want.method ~= req.method or want.url ~= req.url then
    return nil, "alloy_ngx: the replayed call sent a different request"
  end
  if rep.err then return nil, rep.err end
  return rep.res
end

-- Methods that never send go straight to the client.
local DIRECT = { close = true }

local Wrapper = {
  __index = function(self, name)
    local m = Client[name]
    if m then return m end
    local f = self._client[name]
    if type(f) ~= "function" or DIRECT[name] then
      if type(f) == "function" then
        return function(_, ...) return f(self._client, ...) end
      end
      return f
    end
    local method = function(_, ...) return self:_call(name, ...) end
    rawset(self, name, method)
    return method
  end,
  __tostring = function(self) return "alloy_ngx(" .. tostring(self._client) .. ")" end,
}

-- opts: alloy.new options (api_key, api_version, timeout, ...) plus
--   locations = { embedded = "/_alloy/embedded/", base = "/_alloy/base/" }
-- embedded_url, base_url and transport are set here.  alloy.so does not retry through a
-- transport (retrying would mean sleeping in C); nginx's proxy_next_upstream covers
-- connection errors.
function M.new(opts)
  local alloy = require "alloy"
  local o, locations = {}, {}
  for k, v in pairs(opts or {}) do o[k] = v end
  for k, v in pairs(M.LOCATIONS) do locations[k] = v end
  for k, v in pairs(o.locations or {}) do locations[k] = v end
  o.locations = nil
  local self = setmetatable({ routes = {} }, Wrapper)
  for service, origin in pairs(M.ORIGINS) do self.routes[origin] = locations[service] end
  o.embedded_url, o.base_url = M.ORIGINS.embedded, M.ORIGINS.base
  o.transport = function(req) return transport(self, req) end
  self._client = alloy.new(o)
  return self
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
