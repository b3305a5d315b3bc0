-- alloy.listener: a one-shot loopback HTTP listener for the OAuth redirect (luasocket).
--
--   local L, err, code = listener.open("127.0.0.1", 3000)   ("localhost": 127.0.0.1 and [::1])
--       code: "EADDRINUSE", "EACCES" or "EBIND"; L.addresses: "127.0.0.1:3000 and [::1]:3000"
--   local req, err = L:wait{ path = "/oauth/callback", timeout = 300, respond = fn }
--       fn(req) -> status, html, done   (called for each GET on `path`; waiting goes on
--       until it says done: any local page can send a request there)
--       req = { method, target, path, query = {k = v}, headers = {lower = v} }
--       err = "timeout" when nothing ended the wait in time
--   L:close()   (idempotent; the port is free again afterwards)
--
-- Bound to loopback only.  Requests for other paths (favicon.ico, ...) get a 404, other
-- methods than GET on `path` a 405, and the listener keeps waiting; connections that never
-- send a request (browser preconnects) do not block it: every socket is driven by select().
local socket = require "socket"

local M = {}
local Listener = {}
Listener.__index = Listener

local MAX_REQUEST = 16384

-- One bound, listening socket.  -> socket | nil, msg, code
local function bind(host, port)
  local v6 = host:find(":", 1, true) ~= nil
  -- tcp4/tcp6, not tcp: LuaSocket 3's tcp() creates its descriptor only at bind time, so
  -- reuseaddr set before bind would be lost (and a port in TIME_WAIT from the previous run
  -- would look busy).
  local s = v6 and socket.tcp6 and socket.tcp6() or (socket.tcp4 or socket.tcp)()
  if not s then return nil, "cannot create a socket", "EBIND" end
  s:setoption("reuseaddr", true)
  if v6 then s:setoption("ipv6-v6only", true) end
  local ok, err = s:bind(host, port)
  if ok then ok, err = s:listen(32) end
  if not ok then
    s:close()
    local code = "EBIND"
    local e = tostring(err):lower()
    if e:find("in use", 1, true) then code = "EADDRINUSE"
    elseif e:find("permission", 1, true) or e:find("access", 1, true) then code = "EACCES"
    elseif e:find("assign", 1, true) or e:find("not supported", 1, true) or e:find("family", 1, true) then
      code = "EADDRNOTAVAIL"
    end
    return nil, ("cannot listen on %s:%s: %s"):format(v6 and ("[" .. host .. "]") or host, tostring(port),
      tostring(err)), code
  end
  s:settimeout(0)
  return s
end

-- host "localhost" binds 127.0.0.1 and, where this machine has IPv6, [::1] too: a browser may
-- try either for localhost, and whatever else held [::1]:port would get the redirect.
function M.open(host, port)
  host = host or "127.0.0.1"
  local addrs = host == "localhost" and { "127.0.0.1", "::1" } or { host }
  local servers = {}
  for _, a in ipairs(addrs) do
    local s, err, code = bind(a, port)
    if not s and not (a == "::1" and code == "EADDRNOTAVAIL") then
      for _, x in ipairs(servers) do x:close() end
      return nil, err, code
    end
    if s then
      servers[#servers + 1] = s
      local _, bound_port = s:getsockname()
      port = tonumber(bound_port) or port -- port 0: the second address takes the same one
    end
  end
  local shown = {}
  for i, s in ipairs(servers) do
    local a = s:getsockname()
    shown[i] = a:find(":", 1, true) and ("[" .. a .. "]:" .. port) or (a .. ":" .. port)
  end
  return setmetatable({ servers = servers, host = host, port = port, clients = {},
                        addresses = table.concat(shown, " and ") }, Listener)
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local out = {}
  for pair in (q or ""):gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    out[url_decode(k)] = url_decode(v)
  end
  return out
end

function M.html_escape(s)
  return (tostring(s):gsub("[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  }))
end

-- A small standalone HTML page.
function M.page(title, paragraphs)
  local body = {}
  for _, p in ipairs(paragraphs or {}) do body[#body + 1] = "<p>" .. p .. "</p>" end
  return table.concat({
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>", M.html_escape(title), "</title>",
    "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em}",
    "code{background:#eee;padding:.1em .3em}</style></head><body>",
    "<h1>", M.html_escape(title), "</h1>",
    table.concat(body),
    "</body></html>\n",
  })
end

local REASONS = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
                  [500] = "Internal Server Error", [502] = "Bad Gateway" }

local function send(c, status, html, extra_header)
  c:settimeout(5)
  c:send(("HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
    .. "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s"):format(
      status, REASONS[status] or "OK", #html, extra_header or "", html))
  c:close()
end

local function parse_request(buf)
  local head = buf:match("^(.-)\r?\n\r?\n")
  if not head then return nil end
  local lines = {}
  for l in (head .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = (l:gsub("\r$", "")) end
  local method, target = (lines[1] or ""):match("^(%u+)%s+(%S+)%s+HTTP/%d")
  if not method then return false end
  local headers = {}
  for i = 2, #lines do
    local k, v = lines[i]:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local path, query = target:match("^([^?#]*)%??([^#]*)")
  if target:match("^https?://") then -- absolute-form
    path, query = target:match("^https?://[^/]*([^?#]*)%??([^#]*)")
  end
  if path == "" then path = "/" end
  return { method = method, target = target, path = path, query = parse_query(query), headers = headers }
end

local function norm_path(p)
  p = p or "/"
  if p == "" then p = "/" end
  if #p > 1 then p = p:gsub("/+$", "") end
  return p
end

function Listener:wait(opts)
  local want = norm_path(opts.path)
  local deadline = socket.gettime() + (opts.timeout or 300)
  while true do
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, "timeout" end
    local recvt, is_server = {}, {}
    for _, srv in ipairs(self.servers) do recvt[#recvt + 1] = srv; is_server[srv] = true end
    for c in pairs(self.clients) do recvt[#recvt + 1] = c end
    -- short slices keep Ctrl-C responsive
    local ready = socket.select(recvt, nil, math.min(left, 0.25))
    for _, s in ipairs(ready or {}) do
      if is_server[s] then
        local c = s:accept()
        if c then
          c:settimeout(0)
          self.clients[c] = { buf = "", since = socket.gettime() }
        end
      else
        local st = self.clients[s]
        local data, err, partial = s:receive(4096)
        local chunk = data or partial or ""
        st.buf = st.buf .. chunk
        local req = parse_request(st.buf)
        if req == false or #st.buf > MAX_REQUEST then
          self.clients[s] = nil
          send(s, 400, M.page("Bad request", { "This listener only understands the OAuth redirect." }))
        elseif req then
          self.clients[s] = nil
          if norm_path(req.path) ~= want then
            send(s, 404, M.page("Not found", { "Waiting for the OAuth redirect on <code>"
              .. M.html_escape(want) .. "</code>." }))
          elseif req.method ~= "GET" then
            -- the browser comes back with a GET; a form or script posting here is not it
            send(s, 405, req.method == "HEAD" and "" or M.page("Method not allowed",
              { "The OAuth redirect is a GET." }), "Allow: GET\r\n")
          else
            local okr, status, html, done = pcall(opts.respond, req)
            if not okr then
              send(s, 500, M.page("Internal error", { M.html_escape(status) }))
              error(status, 0)
            end
            send(s, status or 200, html or M.page("Done", { "You can close this window." }))
            if done then return req end
          end
        elseif err == "closed" then
          self.clients[s] = nil
          s:close()
        end
      end
    end
    -- drop idle connections (preconnects) after 30 s
    local now = socket.gettime()
    for c, st in pairs(self.clients) do
      if now - st.since > 30 then self.clients[c] = nil; c:close() end
    end
  end
end

function Listener:close()
  for c in pairs(self.clients) do c:close() end
  self.clients = {}
  for _, srv in ipairs(self.servers) do srv:close() end
  self.servers = {}
end

return M
