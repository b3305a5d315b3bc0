-- alloy.json: the JSON a command prints (lua-cjson underneath, loaded on first use).
--
-- M.encode(v)        one JSON document: keys sorted, arrays marked with M.array encoded as
--                    [] even when empty, "/" not escaped, and the characters a terminal acts
--                    on (DEL, C1 controls, bidirectional marks) as \u escapes
-- M.array(t)         marks t as a JSON array
-- M.null             JSON's null (cjson.null)
-- M.as_sent(text)    a server's JSON document as it was sent, for printing: its numbers exactly
--                    as written (decoding turns integers over 2^53 into approximations and 1e400
--                    into infinity), on one line and safe for a terminal. Only for text that
--                    decoded as JSON.
-- M.decode(text)     -> value | nil, message (one line)
local output = require "alloy.output"

local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

local function cjson() return require "cjson" end

local ARRAY_MT = { __name = "alloy.json.array" }

function M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end

local function is_array(t)
  if getmetatable(t) == ARRAY_MT then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then return false end
    count = count + 1
  end
  return count == n
end

local function encode(v)
  if type(v) == "table" then
    if is_array(v) then
      local parts = {}
      for i = 1, #v do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys, byname = {}, {}
    for k, val in pairs(v) do
      local name = tostring(k)
      keys[#keys + 1] = name
      byname[name] = val
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = cjson().encode(k) .. ":" .. encode(byname[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return cjson().encode(v)
end

-- Each character of s that a pattern of `patterns` matches, as a \u escape.
local function escaped(s, patterns)
  for _, pat in ipairs(patterns) do
    s = s:gsub(pat, function(c)
      local b1, b2, b3 = c:byte(1, -1)
      local code = #c == 1 and b1 or #c == 2 and (b1 % 32) * 64 + b2 % 64 or ((b1 % 16) * 64 + b2 % 64) * 64 + b3 % 64
      return ("\\u%04x"):format(code)
    end)
  end
  return s
end

-- What lua-cjson leaves raw that a terminal acts on (only inside strings, in JSON); for JSON
-- as a server sent it, also the C0 controls lua-cjson accepts raw inside strings.
local ESCAPES = { "\127", unpack_(output.MARKS) }
local AS_SENT_ESCAPES = { "[%z\1-\31\127]", unpack_(output.MARKS) }

-- A raw byte 0x80-0x9F that is not part of a UTF-8 character is not text JSON can carry, and
-- a terminal may act on it: U+FFFD, the replacement character, stands in its place.
function M.encode(v)
  return output.raw_c1(escaped((encode(v):gsub("\\/", "/")), ESCAPES), "\\ufffd")
end

function M.as_sent(text)
  -- most answers are plain ASCII JSON: one scan finds nothing to escape or replace
  if not text:find("[%z\1-\31\127-\255]") then
    if not (text:find("^%s") or text:find("%s$")) then return text end
    return (text:match("^%s*(.-)%s*$"))
  end
  local s = escaped((text:gsub("[\r\n\t]", " ")), AS_SENT_ESCAPES)
  return output.raw_c1((s:match("^%s*(.-)%s*$")), "\\ufffd")
end

function M.decode(text)
  local ok, v = pcall(function() return cjson().decode(text) end)
  if not ok then return nil, (tostring(v):gsub("^.-: ", "")) end
  return v
end

setmetatable(M, { __index = function(_, k) if k == "null" then return cjson().null end end })

return M
