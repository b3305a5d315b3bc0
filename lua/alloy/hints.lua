-- alloy.hints: one line of advice for a failed API call, chosen by its failure code, its HTTP
-- status and the operation that failed, never by the server's text (which is data, and
-- changes). The retry rule a hint states is the wire's own (alloy.operations[op].retried).
--
-- M.for_failure(f, view) -> hint (never nil)
--   f     an alloy.failure with f.code (and f.op) set
--   view  how the host names things (the command line, the Neovim plugin), all optional:
--     view.setting(field)  -> how a setting is given here: "ALLOY_USER_ID / --user"
--     view.value(field)    -> its value here (the user id, the base URL ...) or nil
--     view.connector, view.action  what the command was about
--     view.command(name, ...) -> a command line that runs command `name` here, or nil
--     view.generic            the advice for a failure without a hint of its own (default: run
--                             again with --verbose)
-- M.BY_CODE: the advice per code (a string, or a function(f, h) -> hint, next); the families
-- of alloy.codes, "HTTP_<status>" and "CURL_<n>", are keys too, for the codes of a family
-- without their own entry. M.GENERIC lists the codes deliberately left to the generic advice.
-- spec/hints_spec.lua checks both against alloy.codes.
local ids = require "alloy.ids"

local M = {}

local GENERIC = "run again with --verbose to see the HTTP exchange"

-- The operations that name a user (in the path, a header or the body).
local USER_OPS = {
  user_token = true, get_user = true, delete_user = true, list_credentials = true, list_user_credentials = true,
  delete_credential = true, create_credential = true, execute_action = true, run_event = true, run_workflow = true,
  list_integrations = true, upload_request = true, list_files = true,
}
-- The operations whose user may be a username too (the runs, as the reference says).
local USERNAME_OPS = { run_event = true, run_workflow = true, list_integrations = true }
-- The operations about one connector.
local CONNECTOR_OPS = {
  credential_metadata = true, list_resources = true, get_action = true, list_connector_credentials = true,
  create_credential = true,
}

-- What a hint says through the view.
local Words = {}
Words.__index = Words

local function words(view)
  return setmetatable({ view = view or {} }, Words)
end

-- The variable that sets a field ("user_id" -> "ALLOY_USER_ID"): what a host without a view
-- is told to check.
local function variable(field)
  for _, v in ipairs(require("alloy.config").VARS) do
    if v.field == field then return v.var end
  end
  return field
end

-- "ALLOY_USER_ID / --user (nobody)": how a setting is given here, with its value.
function Words:setting(field, with_value)
  local name = self.view.setting and self.view.setting(field) or variable(field)
  local v = with_value ~= false and self:value(field)
  return v and ("%s (%s)"):format(name, v) or name
end

function Words:value(field)
  local v = self.view.value and self.view.value(field)
  if type(v) == "number" then return ("%g"):format(v) end
  return type(v) == "string" and v or nil
end

-- The host an operation goes to.
function Words:host(op)
  local ok, alloy = pcall(require, "alloy")
  local service = ok and op and alloy.operations[op] and alloy.operations[op].service
  return self:setting(service == "embedded" and "embedded_url" or "base_url")
end

-- A command to paste, or nil where the host has no commands.
function Words:command(...)
  return self.view.command and self.view.command(...) or nil
end

-- "; the users: alloy users list", or "" where the host has no commands.
function Words:then_run(lead, ...)
  local line = self:command(...)
  return line and ("; " .. lead .. ": " .. line) or ""
end

-- "the user's slack connections: alloy connections slack" (or only the words before the colon).
function Words:connections()
  local c = ids.word(self.view.connector, "<connector>")
  local line = self:command("connections", c)
  return ("the user's %s connections%s"):format(c, line and (": " .. line) or "")
end

function Words:hosts()
  return self:setting("base_url", false) .. " / " .. self:setting("embedded_url", false)
end

-- How often the request was sent, or why it was not sent again: alloy.so's own rule for this
-- operation and failure (alloy.operations[op].retried).
function Words:retry(f)
  local ok, alloy = pcall(require, "alloy")
  local spec = ok and f.op and alloy.operations[f.op]
  local rule = spec and spec.retried[f.code]
  local attempts = type(f.res) == "table" and tonumber(f.res.attempts)
  if attempts and attempts > 1 then
    return ("it was sent %d times; %s sets the retries"):format(attempts, self:setting("retries", false))
  end
  if rule == "always" then
    return ("%s sets how often it is sent again"):format(self:setting("retries", false))
  end
  local acted = spec and spec.method ~= "GET" and ": it may have acted" or ""
  if rule == "with Retry-After" then
    return "it is sent again only when the API answers with Retry-After" .. acted
  end
  return "it is not sent again automatically" .. acted
end

local function network(f, h)
  local extra = f.code == "OPERATION_TIMEDOUT"
    and ("; %s sets the per-request timeout in seconds"):format(h:setting("timeout")) or ""
  if f.op == "put_file" then
    return "check network connectivity and proxy settings (https_proxy): the file goes to the storage host of the"
      .. " URL the API gave, not to " .. h:setting("base_url", false) .. extra
  end
  return "check network connectivity and proxy settings (https_proxy), and " .. h:host(f.op) .. extra
end

local function tls(f, h)
  if f.op == "put_file" then
    return ("TLS failed with the storage host of the upload URL: %s (or CURL_CA_BUNDLE) must name a CA bundle that"
      .. " trusts it"):format(h:setting("ca_file", false))
  end
  -- libcurl says "no alternative certificate subject name matches target host name" or
  -- "certificate subject name ... does not match target host name": its own text, not a server's
  if tostring(f.message):lower():find("host ?name") then
    return "TLS failed: the server's certificate is not for this host name; check " .. h:host(f.op)
      .. " (a CA bundle cannot fix a name mismatch)"
  end
  return ("TLS failed: point %s (or CURL_CA_BUNDLE) at a CA bundle that trusts the server (%s)"):format(
    h:setting("ca_file", false), h:host(f.op))
end

local function not_alloy(_, h)
  return ("the server did not answer like the Alloy API: check %s and %s%s"):format(h:hosts(),
    h:setting("api_version"), h:then_run("to try the known variants", "token", "--probe"))
end

local function bad_url(f, h)
  return "the host must be an http:// or https:// URL: " .. h:host(f.op)
end

-- 404: what was not found, by operation.
-- The storage host refused the PUT (S3's codes: SignatureDoesNotMatch, AccessDenied, BadDigest).
local function upload_refused()
  return "the storage host refused the upload (its message says why): the URL may have expired, or the file's"
    .. " type or MD5 differ from the ones it was issued for; run the upload again for a new URL"
end

local function not_found(f, h)
  local op, connector = f.op, h.view.connector
  if op == "execute_action" then
    return ("the user or the connection was not found: check %s and %s (%s)"):format(h:setting("user_id"),
      h:setting("connection_id"), h:connections())
  end
  if op == "delete_credential" then
    return ("%s has no connection with that id%s"):format(h:setting("user_id"),
      h:then_run("the user's connections", "connections"))
  end
  if op == "run_event" then
    return ("the user or the event was not found: check %s and the event's name%s"):format(h:setting("user_id"),
      h:then_run("the custom events", "events"))
  end
  if op == "run_workflow" then
    return ("the user or the workflow was not found: check %s and the workflow's id or name%s"):format(
      h:setting("user_id"), h:then_run("the user's workflows", "workflows"))
  end
  if op == "put_file" then
    return "the storage host has no such bucket or key: the URL the API gave is not one it serves; run the upload again"
  end
  if op == "get_action" then
    return "check the action id" .. h:then_run("the connector's actions", "actions", ids.word(connector, "<connector>"))
  end
  if CONNECTOR_OPS[op] then
    return ("check the connector id%s%s%s"):format(connector and (" " .. connector) or "",
      USER_OPS[op] and (" and " .. h:setting("user_id")) or "", h:then_run("the connectors", "connectors"))
  end
  if op == "get_user" or op == "delete_user" then
    return "no such user (id or username) for this API key" .. h:then_run("the users", "users", "list")
  end
  if USER_OPS[op] then
    return ("check %s: the user must exist for this API key, and %s must be the right host%s"):format(
      h:setting("user_id"), h:host(op), h:then_run("the users", "users", "list"))
  end
  return ("the API has no such route: check %s and %s"):format(h:host(op), h:setting("api_version"))
end

-- 400 and 422: the request was refused as it was.
local function rejected(f, h)
  local user = h:value("user_id")
  if USER_OPS[f.op] and not USERNAME_OPS[f.op] and user and not ids.object_id(user) then
    return ("user ids are 24-hex ObjectIds (e.g. 68c3229752345278627ae373); a username works only where the API"
      .. " accepts one (the token, get user): check %s"):format(h:setting("user_id"))
  end
  if f.op == "execute_action" then
    local c, a = ids.word(h.view.connector, "<connector>"), ids.word(h.view.action, "<action>")
    local takes = h:command("action", c, a)
    return ("the API refused the execute (its message says why): check the connection, %s (%s), and the"
      .. " input%s"):format(h:setting("connection_id"), h:connections(),
      takes and (" (what the action takes: " .. takes .. ")") or "")
  end
  if f.op == "create_credential" then
    return "the API refused the connection's inputs (its fields, the auth config, the redirect URI); the message"
      .. " above says which"
  end
  if f.op == "create_user" then return "the API refused the user; the message above says which field" end
  if f.op == "run_workflow" then
    return "only a workflow with a webhook trigger runs this way (one a custom event triggers runs with "
      .. (h:command("trigger", "<event>") or "a trigger of its event") .. "); else the message above says which field"
  end
  if f.op == "list_logs" then
    return "the API refused the logs query (a workflow id, the user, --since); the message above says which"
  end
  if f.op == "put_file" then return upload_refused() end
  return "the API refused the request; the message above says which field"
end

M.BY_CODE = {
  HTTP_400 = rejected,
  HTTP_401 = function(_, h)
    return ("check %s: it must be a valid Alloy API key for this environment (keys are per environment; users"
      .. " made with a development key exist only there)"):format(h:setting("api_key", false))
  end,
  HTTP_403 = function(f, h)
    if f.op == "put_file" then return upload_refused() end
    if f.op == "execute_action" then
      return ("the connection must be one of the user's: check %s and %s (%s)"):format(h:setting("connection_id"),
        h:setting("user_id"), h:connections())
    end
    return "the API key is not allowed to do this; check its permissions in the Alloy dashboard"
  end,
  HTTP_404 = not_found,
  HTTP_409 = function(f)
    if f.op == "create_user" then
      return "a user with this username exists already: pick another username, or use that user"
    end
    return "the API reports a conflict with what exists; the message above says which"
  end,
  HTTP_422 = rejected,
  HTTP_429 = function(f, h)
    return "rate limited by the API; wait a little and try again (" .. h:retry(f) .. ")"
  end,
  ["HTTP_<status>"] = function(f, h)
    if f.code:match("^HTTP_3%d%d$") then
      return "the API answered with a redirect, which is not followed (it could carry the key elsewhere); put the"
        .. " URL it names in " .. h:host(f.op) .. " if you trust it"
    end
    if f.code:match("^HTTP_5%d%d$") then
      return "the Alloy API failed on its side; try again later (" .. h:retry(f) .. ")"
    end
    return ("unexpected HTTP status; check %s and %s"):format(h:host(f.op), h:setting("api_version"))
  end,
  COULDNT_CONNECT = network, COULDNT_RESOLVE_HOST = network, COULDNT_RESOLVE_PROXY = network, PROXY = network,
  OPERATION_TIMEDOUT = network, GOT_NOTHING = network, RECV_ERROR = network, SEND_ERROR = network,
  PARTIAL_FILE = network,
  SSL_CACERT = tls, SSL_CONNECT_ERROR = tls, SSL_CACERT_BADFILE = tls,
  JSON_DECODE = not_alloy, BAD_RESPONSE = not_alloy, BODY_TOO_LARGE = not_alloy, WEIRD_SERVER_REPLY = not_alloy,
  HEADERS_TOO_LARGE = not_alloy,
  UNSUPPORTED_PROTOCOL = bad_url, URL_MALFORMAT = bad_url,
  INVALID_ARGUMENT = "ids are non-empty, without control characters, '/', '?' or '#' (or whole numbers);"
    .. " header values have no CR, LF or NUL",
  UNSUCCESSFUL = function(f, h)
    local what = f.op == "execute_action" and "the action did not run as asked (the connector's message above says"
      .. " why); check the input and the connection (" .. h:connections() .. ")"
      or "the API answered that it did not do it (success: false); the message above says why"
    return what .. (f.op == "delete_credential" and h:then_run("what the user has now", "connections") or "")
  end,
  INTERRUPTED = "stopped by Ctrl-C; nothing more was sent",
  FILE_READ = "name a regular file you can read (not a directory, FIFO or device)",
  FILE_CHANGED = "the file changed while it was read, and nothing was stored; run the upload again once nothing"
    .. " writes to it",
  UNSAFE_URL = function(_, h)
    return "the API answered with an upload URL the client does not send a file to (https only); nothing was sent:"
      .. " check " .. h:setting("base_url")
  end,
  MD5_UNAVAILABLE = "uploads need OpenSSL's libcrypto (Debian: libssl3, which libcurl uses too) with MD5 allowed",
  CANCELLED = "cancelled before it finished (its handle was cancelled, or its client closed); a request already"
    .. " sent may have been acted on",
}

-- Codes that get the generic advice on purpose: a specific hint would only guess.
M.GENERIC = {
  ["CURL_<n>"] = true,      -- libcurl failures without a name of their own: the message says it
  TRANSPORT_ERROR = true,   -- a host's own transport failed: its message is all there is
  JWT_DECODE = true,        -- from alloy.jwt_claims, not from a request
  HTTP2 = true,             -- HTTP/2 framing and stream resets: nothing the user can set
  HTTP2_STREAM = true,
  OUT_OF_MEMORY = true,
}

-- The family key of a code ("HTTP_404" -> "HTTP_<status>"), or nil.
function M.family(code)
  if code:match("^HTTP_%d+$") then return "HTTP_<status>" end
  if code:match("^CURL_%d+$") then return "CURL_<n>" end
  return nil
end

function M.for_failure(f, view)
  local code = f.code or ""
  local hint = M.BY_CODE[code] or M.BY_CODE[M.family(code) or ""]
  if type(hint) == "function" then return hint(f, words(view)) end
  return hint or (view and view.generic) or GENERIC
end

return M
