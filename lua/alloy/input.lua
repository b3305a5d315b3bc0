-- alloy.input: what a command reads from the files and stdin its command line names.
--
-- M.open(path)       -> file | nil, message: a file to read (- for stdin; a pipe is fine,
--                        `<(cmd)` too; a directory or a socket has none)
-- M.read(path)        -> text | nil, message: a file's whole text (M.open), at most M.MAX bytes
-- M.json_object(text) -> value | nil, why: JSON that is an object (not an array, a string, null)
-- M.object(value, flag, what) -> object | false | nil, err: `what` ("the body"), a JSON object
--                        given as `flag JSON`, `flag @file`, `flag -` (stdin), or on stdin when
--                        value is nil and stdin is not a terminal; false when none was given.
--                        err: status 2, naming where it came from
local M = {}

-- JSON a person or a program wrote; more than this is a mistake (/dev/zero), not input.
M.MAX = 64 * 1024 * 1024

function M.open(path)
  if path == "-" then return io.stdin end
  local info, ierr = require("alloy").file_info(path, true)
  if not info then return nil, ierr end
  if info.type == "directory" or info.type == "socket" then
    return nil, ("%s is a %s, not a file"):format(require("alloy.output").printable(path), info.type)
  end
  return io.open(path, "rb")
end

function M.read(path)
  local f, oerr = M.open(path)
  if not f then return nil, oerr end
  local s, rerr = f:read(M.MAX + 1)
  if f ~= io.stdin then f:close() end
  if s == nil and rerr then return nil, rerr end
  s = s or ""
  if #s > M.MAX then return nil, "more than 64 MiB" end
  return s
end

function M.json_object(text)
  local json = require "alloy.json"
  local v, err = json.decode(text)
  if v == nil then return nil, err end
  if v == json.null then return nil, "it is null" end
  if type(v) ~= "table" then return nil, "it is a " .. (type(v) == "number" and "number" or type(v) == "boolean"
    and "boolean" or "string") end
  if v[1] ~= nil then return nil, "it is an array" end
  return v
end

function M.object(value, flag, what)
  local failure, output = require "alloy.failure", require "alloy.output"
  local text, where = value, flag
  if text == nil then
    if output.isatty(io.stdin) then return false end
    text, where = io.stdin:read("*a") or "", "stdin"
    if text:match("^%s*$") then return false end
  elseif text == "-" or text:sub(1, 1) == "@" then
    local path = text == "-" and "-" or text:sub(2)
    local err
    text, err = M.read(path)
    if not text then
      return nil, failure.usage(("cannot read %s: %s"):format(what, tostring(err)),
        ("%s @<file> names a readable file"):format(flag))
    end
    where = path == "-" and "stdin" or path
  end
  local v, err = M.json_object(text)
  if not v then
    return nil, failure.usage(("%s (%s) is not a JSON object: %s"):format(what, where, err),
      ([[%s '{"name":"value"}' (or @file, or - for stdin)]]):format(flag))
  end
  return v
end

return M
