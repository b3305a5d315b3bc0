-- alloy.hints: one line of advice for a failure code from alloy.so.
--
-- M.for_failure(code, msg, ctx) -> hint string (never nil)
--   code  stable code from the C module ("HTTP_401", "COULDNT_CONNECT", ...)
--   msg   its one-line message (used to recognise "userId must be a valid ID")
--   ctx   optional { user_id=, url=, connector=, what= } to make the hint concrete
local M = {}

local NETWORK = {
  COULDNT_CONNECT = true, COULDNT_RESOLVE_HOST = true, COULDNT_RESOLVE_PROXY = true,
  OPERATION_TIMEDOUT = true, GOT_NOTHING = true, RECV_ERROR = true, SEND_ERROR = true,
  PARTIAL_FILE = true,
}

local function url_hint(ctx)
  if ctx.url then return " (" .. ctx.url .. ")" end
  return ""
end

function M.for_failure(code, msg, ctx)
  ctx = ctx or {}
  code = code or ""
  msg = msg or ""
  if code == "HTTP_401" then
    return "check ALLOY_API_KEY: it must be a valid Alloy API key for this environment"
      .. " (keys are per environment; users made with a development key exist only there)"
  elseif code == "HTTP_403" then
    return "the API key is not allowed to do this; check its permissions in the Alloy dashboard"
  elseif code == "HTTP_400" and msg:lower():find("must be a valid id", 1, true) then
    return "user ids are 24-hex ObjectIds (e.g. 68c3229752345278627ae373); a username works only where the"
      .. " API accepts one (token, get user): check ALLOY_USER_ID / --user"
  elseif code == "HTTP_404" then
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
  elseif code == "HTTP_400" or code == "HTTP_422" then
    if ctx.connector then
      return ("the API rejected the request; check the connector id %q and the redirect URI"):format(ctx.connector)
    end
    return "the API rejected the request; the message above says which field"
  elseif code == "HTTP_429" then
    return "rate limited by the API; wait a little and retry (ALLOY_RETRIES sets automatic retries)"
  elseif code:match("^HTTP_5%d%d$") then
    return "the Alloy API failed on its side; retry later (502/503/504 are retried ALLOY_RETRIES times)"
  elseif code:match("^HTTP_") then
    return "unexpected HTTP status; check ALLOY_BASE_URL / ALLOY_EMBEDDED_URL and ALLOY_API_VERSION"
  elseif NETWORK[code] then
    local extra = code == "OPERATION_TIMEDOUT" and "; ALLOY_TIMEOUT sets the per-request timeout in seconds" or ""
    return "check network connectivity and proxy settings (https_proxy), and ALLOY_BASE_URL / ALLOY_EMBEDDED_URL"
      .. url_hint(ctx) .. extra
  elseif code:match("^SSL_") or code == "PEER_FAILED_VERIFICATION" then
    return "TLS failed: point ALLOY_CA_FILE (or CURL_CA_BUNDLE) at a CA bundle that trusts the server"
      .. url_hint(ctx)
  elseif code == "JSON_DECODE" or code == "BAD_RESPONSE" or code == "BODY_TOO_LARGE" then
    return "the server did not answer like the Alloy API: check ALLOY_BASE_URL / ALLOY_EMBEDDED_URL"
      .. url_hint(ctx) .. " and ALLOY_API_VERSION (get_jwt_token.lua --probe tries the known variants)"
  elseif code == "INVALID_ARGUMENT" then
    return "ids and header values must not contain control characters (CR, LF, NUL)"
  end
  return "run again with --verbose to see the HTTP exchange"
end

-- Exit code for a failure code: 2 for bad input we sent (usage), 1 for API/network.
function M.exit_code(code)
  if code == "INVALID_ARGUMENT" then return 2 end
  return 1
end

return M
