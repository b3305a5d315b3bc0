-- One-off misbehaviour injected before normal handling (sb:fault{...}), the success:false
-- refusal taken by routes whose documented answer carries "success", and the rate limit.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"

local M = {}

local REASON = {
  [400] = "Bad Request", [401] = "Invalid or missing authentication", [403] = "Forbidden",
  [404] = "Not Found", [408] = "Request Timeout", [422] = "Unprocessable Entity",
  [429] = "Rate limit exceeded", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local FIELDS = { path = "string", method = "string", times = "number", status = "number",
  headers = "table", body = true, delay = "number", drop = "boolean", stall = "number",
  finish = "boolean", huge = "number", chunked = "boolean", match = "string", echo = "boolean",
  host = "string", success = "boolean", message = "string", hold = "string" }
local HOSTS = { api = true, embedded = true, s3 = true }

-- Validate at injection time so a typo fails the spec that made it, not a later one.
function M.check(f)
  if type(f) ~= "table" then return nil, "fault must be an object" end
  for k, v in pairs(f) do
    local want = FIELDS[k]
    if not want then return nil, "unknown fault field '" .. tostring(k) .. "'" end
    if want ~= true and type(v) ~= want then
      return nil, "fault field '" .. k .. "' must be a " .. want
    end
  end
  if f.path and not pcall(string.find, "", f.path) then
    return nil, "fault path is not a valid Lua pattern"
  end
  if f.status and (f.status < 200 or f.status > 599) then
    return nil, "fault status must be 200..599"
  end
  if f.host and not HOSTS[f.host] then return nil, "fault host must be api, embedded or s3" end
  if f.success ~= nil then
    if f.success ~= false then return nil, "fault field 'success' can only be false" end
    for k in pairs(f) do
      if not (k == "success" or k == "message" or k == "path" or k == "method" or k == "times"
              or k == "match" or k == "host") then
        return nil, "a success:false fault takes only message, path, method, times, match, host"
      end
    end
  end
  return true
end

local function matches(f, host, method, path, body)
  return (not f.host or f.host == host) and (not f.path or path:find(f.path))
    and (not f.method or f.method:upper() == method)
    and (not f.match or (body or ""):find(f.match, 1, true))
end

-- First pending fault of the kind (refusal: success = false) matching this request, consumed
-- (times counts down). match: text the request body must contain (plain), so concurrent
-- requests pick their own fault.
local function take(refusal, host, method, path, body)
  for i, f in ipairs(state.faults) do
    if (f.success == false) == refusal and matches(f, host, method, path, body) then
      f.times = (f.times or 1) - 1
      if f.times <= 0 then table.remove(state.faults, i) end
      return f
    end
  end
end

function M.take(host, method, path, body) return take(false, host, method, path, body) end

-- A success:false refusal for a route that documents "success": 200 {"success":false, ...}.
function M.take_refusal(host, method, path, body) return take(true, host, method, path, body) end

-- settings.rate_limit = {per_second, retry_after?, host?, window?}: past per_second accepted
-- requests within the last window (1 s) on a host, 429 (refused ones do not count).
-- -> true if refused.
function M.rate_limited(host)
  local r = state.settings.rate_limit
  if not r or (r.host and r.host ~= host) then return false end
  ngx.update_time()
  local now, seen = ngx.now(), state.rate[host] or {}
  local keep = {}
  for _, t in ipairs(seen) do
    if t > now - r.window then keep[#keep + 1] = t end
  end
  state.rate[host] = keep
  if #keep >= r.per_second then
    local headers = r.retry_after and { ["Retry-After"] = tostring(r.retry_after) } or nil
    util.message(429, REASON[429], headers)
    return true
  end
  keep[#keep + 1] = now
  return false
end

local function fault_body(f, status)
  if f.huge then
    local n = math.floor(f.huge)
    if n < 14 then return string.rep("a", n) end
    return '{"padding":"' .. string.rep("a", n - 14) .. '"}'
  end
  if type(f.body) == "table" then return util.encode(f.body) end
  if f.body ~= nil then return tostring(f.body) end
  return util.encode { message = REASON[status] or ("Injected fault " .. status) }
end

-- The forms a hostile server may echo a secret in: {key} as sent, {key_upper},
-- {key_pct} / {key_pct_lower} (every byte but letters and digits percent-encoded),
-- {key_json} ('/' as '\/'), {key_json_u} (every byte but letters and digits as \u00xx),
-- {key_b64} (base64), {key_b64url} (URL-safe, no padding), {key_basic} (base64 of
-- "user:<key>", as in a Basic header: the key at another byte offset).
local function key_forms(key)
  local function each(fmt) return (key:gsub("[^%w]", function(c) return fmt:format(c:byte()) end)) end
  return { key = key, key_upper = key:upper(), key_pct = each("%%%02X"), key_pct_lower = each("%%%02x"),
           key_json = (key:gsub("/", "\\/")), key_json_u = each("\\u%04x"), key_b64 = ngx.encode_base64(key),
           key_b64url = ngx.encode_base64(key):gsub("+", "-"):gsub("/", "_"):gsub("=", ""),
           key_basic = ngx.encode_base64("user:" .. key) }
end

-- With echo, {key...} placeholders in the body and header values become the bearer token of
-- the request in that form.
local function echoed(f)
  local bearer = (ngx.req.get_headers().authorization or ""):match("^[Bb]earer%s+(.*)$") or ""
  local forms = key_forms(bearer)
  local function fill(v) return (tostring(v):gsub("{([%w_]+)}", function(k) return forms[k] end)) end
  local copy = {}
  for k, v in pairs(f) do copy[k] = v end
  if type(f.body) == "string" then copy.body = fill(f.body) end
  if type(f.body) == "table" then copy.body = fill(util.encode(f.body)) end
  copy.headers = {}
  for k, v in pairs(f.headers or {}) do copy.headers[k] = fill(v) end
  return copy
end

-- A hold keeps the request waiting until the control plane releases its name (POST release),
-- at most HOLD_MAX seconds: a spec acts at a known point of a client's run, not after a guess
-- at how long the client takes.
local HOLD_MAX = 30

-- Returns true when the fault answered (or dropped) the request; false to go on normally.
function M.apply(f)
  if f.echo then f = echoed(f) end
  if f.hold then
    local waited = 0
    while not state.released[f.hold] and waited < HOLD_MAX do
      ngx.sleep(0.01)
      waited = waited + 0.01
    end
  end
  if f.delay and f.delay > 0 then ngx.sleep(f.delay) end
  if f.drop then return ngx.exit(444) end -- nginx closes without a response
  if not (f.status or f.body ~= nil or f.huge or f.stall) then return false end

  local status = f.status or 200
  local body = fault_body(f, status)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  for k, v in pairs(f.headers or {}) do ngx.header[k] = v end
  if not f.chunked then ngx.header["Content-Length"] = #body end

  if f.stall then
    local half = math.floor(#body / 2)
    ngx.print(body:sub(1, half))
    ngx.flush(true)
    ngx.sleep(f.stall)
    if not f.finish then return ngx.exit(ngx.ERROR) end -- truncated: short of Content-Length
    ngx.print(body:sub(half + 1))
    return ngx.exit(ngx.HTTP_OK)
  end
  ngx.print(body)
  return ngx.exit(ngx.HTTP_OK)
end

return M
