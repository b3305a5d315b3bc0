-- Lua 5.4 peer: LuaSocket's socket.http (ssl.https from LuaSec for https:// URLs).
--
--   lua5.4 socket_http.lua oneshot URL [CAFILE]   one GET, prints the token
--   lua5.4 socket_http.lua seq N URL [CAFILE]     N GETs one after another
--
-- API key: environment variable BENCH_API_KEY. socket.http sends "Connection: close",
-- so every request opens a new connection (and a new TLS handshake): that is this peer.
-- seq prints "ok=<n> seconds=<elapsed>".
local socket = require "socket"
local ltn12 = require "ltn12"
local cjson = require "cjson.safe"

local key = os.getenv("BENCH_API_KEY")
if not key or key == "" then
  io.stderr:write("socket_http: set BENCH_API_KEY in the environment\n")
  os.exit(2)
end

local function usage()
  io.stderr:write("usage: socket_http.lua oneshot URL [CAFILE] | seq N URL [CAFILE]\n")
  os.exit(2)
end

local mode = arg[1]
local n, url, cafile
if mode == "oneshot" then
  url, cafile = arg[2], arg[3]
elseif mode == "seq" then
  n, url, cafile = tonumber(arg[2]), arg[3], arg[4]
  if not n then usage() end
else
  usage()
end
if not url then usage() end

local http = url:match("^https:") and require "ssl.https" or require "socket.http"
local headers = {
  authorization = "Bearer " .. key,
  ["x-api-version"] = "2025-09",
  accept = "application/json",
}

local reported = false
local function get_token()
  local chunks = {}
  local req = { url = url, headers = headers, sink = ltn12.sink.table(chunks) }
  if cafile and cafile ~= "-" then
    req.cafile, req.verify = cafile, "peer"
  end
  local ok, status = http.request(req)
  local body = table.concat(chunks)
  local doc = ok and status == 200 and cjson.decode(body)
  local token = type(doc) == "table" and type(doc.token) == "string" and doc.token ~= "" and doc.token
  if not token and not reported then
    reported = true
    io.stderr:write("socket_http: ", tostring(status), ": ", body:sub(1, 200), "\n")
  end
  return token
end

if mode == "oneshot" then
  local token = get_token()
  if not token then os.exit(1) end
  io.write(token, "\n")
else
  local ok = 0
  local t0 = socket.gettime()
  for _ = 1, n do
    if get_token() then ok = ok + 1 end
  end
  io.write(string.format("ok=%d seconds=%.6f\n", ok, socket.gettime() - t0))
  os.exit(ok == n and 0 or 1)
end
