-- alloy.failure: the `err` of every `nil, err` from the alloy.* helpers.
--
--   err.message  one line saying what failed (never the API key)
--   err.hint     one line saying what to do about it; a failure of an API call (err.code
--                set) gets alloy.hints' advice, by code, status and operation (a command asks
--                alloy.hints again with its own words: its options, its commands)
--   err.next     a command that helps, as words: { "connectors", "--search", "x" } (the
--                command's name in alloy.commands, then its arguments; a server's value in
--                it has passed alloy.ids.word), and err.next_lead, what it is for ("list the
--                connectors with"). A command line prints "<hint>; <lead>: <command>", named
--                the way the user ran this one; a host may ignore them.
--   err.status   the exit status it implies: 2 usage or configuration, 1 API or network,
--                130 Ctrl-C
--   err.code     the alloy.so code ("HTTP_404", "COULDNT_CONNECT", ...) when it came from one
--   err.op       the operation that failed ("user_token", ...), when it came from one
--   err.res      the response table, when there was one
--   err.plain    the message is a plain line, not an error (the person declined): a command
--                prints it as it is, with no "error:" and no hint
-- M.call(client, op, ...) -> value, res | nil, err: a named operation, its failure as one
--                (an empty 2xx body is nil, res: M.is(res) tells them apart)
-- tostring(err) is the message.
local M = {}

M.OK, M.FAILURE, M.USAGE, M.INTERRUPTED = 0, 1, 2, 130

local Failure = { __name = "alloy.failure" }
-- A failure of an API call without a hint of its own gets alloy.hints' advice, in the words
-- of no host in particular (a command asks alloy.hints itself, with its own words).
function Failure.__index(f, k)
  if k == "hint" and rawget(f, "code") then return require("alloy.hints").for_failure(f) end
  return Failure[k]
end
function Failure.__tostring(f) return f.message end

function M.new(message, hint, status)
  return setmetatable({ message = (tostring(message):gsub("[\r\n]+", " ")), hint = hint,
                        status = status or M.FAILURE }, Failure)
end

-- A usage or configuration error (exit status 2).
function M.usage(message, hint)
  return M.new(message, hint, M.USAGE)
end

-- The person said no (to a confirmation, a choice): nothing was done, and nothing failed
-- either; exit status 1, so that a script can tell.
function M.declined(message)
  local f = M.new(message, nil, M.FAILURE)
  f.plain = true
  return f
end

-- f with the command `name ...` suggested after its hint, for `lead`; returns f.
function M.suggest(f, lead, ...)
  f.next, f.next_lead = { ... }, lead
  return f
end

-- Exit status for a failure code: 2 for bad input we sent (usage) or a file we cannot read,
-- 130 for Ctrl-C (as a shell reports it), 1 for API/network.
function M.status_of(code)
  if code == "INVALID_ARGUMENT" or code == "FILE_READ" then return M.USAGE end
  if code == "INTERRUPTED" then return M.INTERRUPTED end
  return M.FAILURE
end

-- The failure tuple of alloy.so (nil, msg, code, res) from operation `op` as a failure; its
-- hint is chosen where it is shown.
function M.api(msg, code, res, op)
  local f = M.new(msg or code or "request failed", nil, M.status_of(code))
  f.code, f.res, f.op = code, res, op
  return f
end

-- client:<op>(...) -> value, res | nil, err: the operation's failure as a failure (a success
-- with an empty body is nil, res: tell them apart with M.is(res)).
function M.call(client, op, ...)
  local v, msg, code, res = client[op](client, ...)
  if v == nil and type(msg) == "string" then return nil, M.api(msg, code, res, op) end
  return v, msg
end

function M.is(v)
  return getmetatable(v) == Failure
end

return M
