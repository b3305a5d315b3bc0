-- Shared helpers for the sandbox handlers: JSON out, responses, ids, time.
-- luacheck: globals ngx
local cjson = require "cjson.safe"

local M = {}

-- Debian's lua-cjson 2.1.0 has no array_mt, so lists are marked here and
-- encoded by hand; an unmarked empty table would otherwise become {}.
local ARRAY = {}
function M.list(t) return setmetatable(t or {}, ARRAY) end

local function encode(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    if getmetatable(v) == ARRAY or v[1] ~= nil then
      for i = 1, #v do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys) -- stable output makes logs and diffs readable
    for i, k in ipairs(keys) do
      parts[i] = encode(k) .. ":" .. encode(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif v == nil or v == cjson.null then
    return "null"
  end
  -- cjson escapes "/" as "\/"; harmless but noisy in URLs.
  return (cjson.encode(v):gsub("\\/", "/"))
end
M.encode = encode
M.decode = cjson.decode
M.null = cjson.null

function M.json(status, body, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  local s = encode(body)
  ngx.header["Content-Length"] = #s
  ngx.print(s)
  return ngx.exit(status)
end

function M.message(status, msg, headers)
  return M.json(status, { message = msg }, headers)
end

-- The validator-style 400 body a community demo observed on create credential.
function M.invalid(prop, msg)
  local full = prop .. " " .. msg
  return M.json(400, { message = full, error = { message = full,
    details = M.list { { properties = prop, message = msg } } } })
end

local function hex(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Random bytes from the kernel; math.random would repeat across restarts.
local urandom
function M.random_bytes(n)
  urandom = urandom or assert(io.open("/dev/urandom", "rb"))
  return urandom:read(n)
end

-- 24-hex ObjectId: 4-byte time, then random, like MongoDB's.
function M.object_id()
  return string.format("%08x", ngx.time()) .. hex(M.random_bytes(8))
end

function M.opaque_token()
  return hex(M.random_bytes(16))
end

function M.is_object_id(s)
  return type(s) == "string" and #s == 24 and s:match("^%x+$") ~= nil
end

function M.iso_now()
  local now = ngx.now()
  local sec = math.floor(now)
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%03dZ", math.floor((now - sec) * 1000))
end

-- RFC 3986 component encoding: only unreserved characters survive.
function M.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

return M
