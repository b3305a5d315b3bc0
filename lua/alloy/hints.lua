-- alloy.hints: one line of advice for a failure code from alloy.so.
--
-- M.for_failure(code, msg, ctx) -> hint string (never nil)
--   code  stable code from the C module ("HTTP_401", "COULDNT_CONNECT", ...)
--   msg   its one-line message (used to recognise "userId must be a valid ID")
--   ctx   optional { user_id=, url=, connector= } to make the hint concrete
-- M.exit_code(code) -> the exit status the code implies
--
-- M.BY_CODE holds the advice per code (a string, or a function(msg, ctx, code)); the
-- families of alloy.codes, "HTTP_<status>" and "CURL_<n>", are keys too, for the codes of a
-- family without their own entry. M.GENERIC lists the codes deliberately left to the
-- generic advice. spec/hints_spec.lua checks both against alloy.codes.
local M = {}

local GENERIC = "run again with --verbose to see the HTTP exchange"

local function url_hint(ctx)
  if ctx.url then return " (" .. ctx.url .. ")" end
  return ""
end

local function network(_, ctx, code)
  local extra = code == "OPERATION_TIMEDOUT" and "; ALLOY_TIMEOUT sets the per-request timeout in seconds" or ""
  return "check network connectivity and proxy settings (https_proxy), and ALLOY_BASE_URL / ALLOY_EMBEDDED_URL"
    .. url_hint(ctx) .. extra
end

local function tls(msg, ctx)
  -- libcurl: "no alternative certificate subject name matches target host name '...'", or
  -- "certificate subject name '...' does not match target host name '...'"
  if msg:lower():find("host ?name") then
    return "TLS failed: the server's certificate is not for this host name; check the host in"
      .. " ALLOY_BASE_URL / ALLOY_EMBEDDED_URL" .. url_hint(ctx) .. " (a CA bundle cannot fix a name mismatch)"
  end
  return "TLS failed: point ALLOY_CA_FILE (or CURL_CA_BUNDLE) at a CA bundle that trusts the server" .. url_hint(ctx)
end

local function not_alloy(_, ctx)
  return "the server did not answer like the Alloy API: check ALLOY_BASE_URL / ALLOY_EMBEDDED_URL"
    .. url_hint(ctx) .. " and ALLOY_API_VERSION (" .. require("alloy.commands").invocation("get_jwt_token")
    .. " --probe tries the known variants)"
end

local function bad_url(_, ctx)
  return "ALLOY_BASE_URL / ALLOY_EMBEDDED_URL must be http:// or https:// URLs" .. url_hint(ctx)
end

local function rejected(_, ctx)
  if ctx.connector then
    return ("the API rejected the request; check the connector id %q and the redirect URI"):format(ctx.connector)
  end
  return "the API rejected the request; the message above says which field"
end

M.BY_CODE = {
  HTTP_400 = function(msg, ctx)
    if msg:lower():find("must be a valid id", 1, true) then
      return "user ids are 24-hex ObjectIds (e.g. 68c3229752345278627ae373); a username works only where the"
        .. " API accepts one (token, get user): check ALLOY_USER_ID / --user"
    end
    return rejected(msg, ctx)
  end,
  HTTP_401 = "check ALLOY_API_KEY: it must be a valid Alloy API key for this environment"
    .. " (keys are per environment; users made with a development key exist only there)",
  HTTP_403 = "the API key is not allowed to do this; check its permissions in the Alloy dashboard",
  HTTP_404 = function(msg, ctx)
    local lower = msg:lower()
    if ctx.connector and lower:find("connector", 1, true) then
      return ("check the connector id %q (e.g. notion, slack, hubspot)"):format(ctx.connector)
    end
    if ctx.connector and not lower:find("user", 1, true) then
      return ("check the connector id %q (e.g. notion, slack, hubspot) and ALLOY_USER_ID / --user%s")
        :format(ctx.connector, ctx.user_id and (" (" .. ctx.user_id .. ")") or "")
    end
    return ("check ALLOY_USER_ID / --user%s: the user must exist for this API key%s")
      :format(ctx.user_id and (" (" .. ctx.user_id .. ")") or "",
        ctx.url and (", and " .. ctx.url .. " must be the right endpoint") or "")
  end,
  HTTP_422 = rejected,
  HTTP_429 = "rate limited by the API; wait a little and retry (ALLOY_RETRIES sets automatic retries)",
  ["HTTP_<status>"] = function(_, _, code)
    if code:match("^HTTP_3%d%d$") then
      return "the API answered with a redirect, which is not followed (it could carry the key elsewhere);"
        .. " put the URL it names in ALLOY_BASE_URL / ALLOY_EMBEDDED_URL if you trust it"
    end
    if code:match("^HTTP_5%d%d$") then
      return "the Alloy API failed on its side; retry later (502/503/504 are retried ALLOY_RETRIES times)"
    end
    return "unexpected HTTP status; check ALLOY_BASE_URL / ALLOY_EMBEDDED_URL and ALLOY_API_VERSION"
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
  INTERRUPTED = "stopped by Ctrl-C; nothing more was sent",
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

function M.for_failure(code, msg, ctx)
  code = code or ""
  local hint = M.BY_CODE[code] or M.BY_CODE[M.family(code) or ""]
  if type(hint) == "function" then return hint(msg or "", ctx or {}, code) end
  return hint or GENERIC
end

-- Exit code for a failure code: 2 for bad input we sent (usage), 130 for Ctrl-C (as a shell
-- reports it), 1 for API/network.
function M.exit_code(code)
  if code == "INVALID_ARGUMENT" then return 2 end
  if code == "INTERRUPTED" then return 130 end
  return 1
end

return M
