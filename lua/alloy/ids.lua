-- alloy.ids: the shapes of ids, and what may stand in a command line a person pastes.
--
-- M.object_id(v)      -> whether v is a user or credential id as documented: 24 hex digits
-- M.check_object_id(what, v, hint) -> v | nil, err (status 2): "connection", "workflow" ...
--                        (a MongoDB ObjectId). Ids from a server are checked before they
--                        reach stdout, .env or a URL.
-- M.name(v)           -> v when it is a connector, action or parameter name: letters,
--                        digits, - _ . (not first), at most 128, never "." or ".."; else nil
-- M.check_name(what, v) -> v | nil, err (status 2): "connector", "action" ... as M.name
-- M.word(v, placeholder) -> the one rule for a server's value in a suggested command: v
--                        when it is a plain word (M.name, at most 64), else the placeholder
--                        (a server could send "slack;$(touch x)")
-- M.quote(v)          -> v as one shell word: as it is when it is plain, else in single
--                        quotes (what the user typed: a path with blanks, say)
-- M.closest(names, want) -> the names nearest to want (edit distance, any case), best first,
--                        at most 3; only plain words (M.word): they are offered for pasting
-- M.suggest(names, want) -> "did you mean a or b?" for those, or nil
local failure = require "alloy.failure"

local M = {}

function M.object_id(v)
  return type(v) == "string" and #v == 24 and v:match("^%x+$") ~= nil
end

function M.name(v)
  if type(v) == "string" and #v <= 128 and v:match("^[%w_][%w_%.%-]*$") and v ~= "." and v ~= ".." then
    return v
  end
  return nil
end

-- Text of v for a message: one line, its first 60 bytes, controls as "?".
local function shown(v)
  return (tostring(v):sub(1, 60):gsub("[%c\127]", "?"))
end

function M.check_name(what, v)
  if M.name(v) then return v end
  return nil, failure.usage(("%q is not a valid %s id (letters, digits, - _ . only)"):format(shown(v), what))
end

-- v when it is a user, connection, workflow … id as documented (24 hex digits), else the
-- usage failure naming what it should have been (hint: what to do instead).
function M.check_object_id(what, v, hint)
  if M.object_id(v) then return v end
  local article = what:match("^[aeiou]") and "an" or "a"
  return nil, failure.usage(("%q is not %s %s id (24 hex digits)"):format(shown(v), article, what), hint)
end

function M.word(v, placeholder)
  if type(v) == "string" and #v <= 64 and M.name(v) then return v end
  return placeholder
end

function M.quote(v)
  v = tostring(v)
  if v:match("^[%w_%-%.%/=:,@%+]+$") then return v end
  return "'" .. v:gsub("'", "'\\''") .. "'"
end

-- Levenshtein distance, case-insensitive.
local function distance(a, b)
  a, b = a:lower(), b:lower()
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

function M.closest(names, want)
  local scored = {}
  for _, name in ipairs(names) do
    if M.word(name) then
      local d = distance(name, want)
      if d <= math.max(2, math.floor(#want / 3)) or name:lower():find(want:lower(), 1, true) then
        scored[#scored + 1] = { name = name, d = d }
      end
    end
  end
  table.sort(scored, function(x, y) if x.d ~= y.d then return x.d < y.d end return x.name < y.name end)
  local out = {}
  for i = 1, math.min(3, #scored) do out[i] = scored[i].name end
  return out
end

function M.suggest(names, want)
  local near = M.closest(names, want)
  return #near > 0 and ("did you mean " .. table.concat(near, " or ") .. "?") or nil
end

return M
