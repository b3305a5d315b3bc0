-- alloy.failure: the `err` of every `nil, err` from the alloy.* helpers.
--
--   err.message  one line saying what failed (never the API key)
--   err.hint     one line saying what to do about it (may be nil)
--   err.status   the exit status it implies: 2 usage or configuration, 1 API or network
--   err.code     the alloy.so code ("HTTP_404", "COULDNT_CONNECT", ...) when it came from one
--   err.res      the response table, when there was one
-- tostring(err) is the message. Only the scripts turn a failure into output and an exit
-- status (cli.exit_on); a host shows err.message and err.hint its own way.
local M = {}

M.OK, M.FAILURE, M.USAGE = 0, 1, 2

local Failure = { __name = "alloy.failure" }
Failure.__index = Failure
function Failure.__tostring(f) return f.message end

function M.new(message, hint, status)
  return setmetatable({ message = (tostring(message):gsub("[\r\n]+", " ")), hint = hint,
                        status = status or M.FAILURE }, Failure)
end

-- A usage or configuration error (exit status 2).
function M.usage(message, hint)
  return M.new(message, hint, M.USAGE)
end

-- The failure tuple of alloy.so (nil, msg, code, res) as a failure with its hint.
-- ctx (optional) makes the hint concrete: { user_id=, url=, connector= }.
function M.api(msg, code, res, ctx)
  local hints = require "alloy.hints" -- only failures need it
  local f = M.new(msg or code or "request failed", hints.for_failure(code, msg, ctx), hints.exit_code(code))
  f.code, f.res = code, res
  return f
end

function M.is(v)
  return getmetatable(v) == Failure
end

return M
