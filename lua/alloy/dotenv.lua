-- alloy.dotenv: read and update `.env` files the way dotenv users expect.
--
-- Accepted syntax, one assignment per line:
--   KEY=value            unquoted; a " #" (blank then #) starts a comment; trimmed
--   export KEY=value     the `export ` prefix is allowed and ignored
--   KEY="a\nb"           double quotes: \n \r \t \" \\ \$ \` escapes; may span lines
--   KEY='raw $text'      single quotes (and `backticks`): literal; may span lines
--   # comment, blank lines, CRLF line ends and a UTF-8 BOM are fine.
-- Later duplicates win.  A line that is none of these is an error reported as
-- "path:LINE: message" (the file is not half-used); the message never quotes the line.
-- Only a regular file (or a symlink to one) of at most M.MAX_SIZE bytes is read.
--
-- M.parse(text, name)      -> vars, entries | nil, "name:LINE: message"
-- M.load(path)             -> vars, entries | nil, msg, errno ("ENOENT" when the file is missing)
-- M.set(path, key, value)  -> true | nil, msg   update in place (atomic; 0600 if created)
-- M.mode(path)             -> "644" style octal permission string | nil
-- M.readable_kind(path)    -> alloy.file_info of a regular file, through a symlink | nil, msg, errno
-- M.exposed(path)          -> warnings for a file holding the key: readable by others, not ignored by git
-- Like io.open these return a plain message (and an errno name); the caller knows the hint.
-- Files are examined and replaced by alloy.so (alloy.file_info, alloy.replace_file), never
-- through a shell. A symlinked .env is read (through the link) but not replaced: that would
-- turn the link into a file.
local M = {}

local BOM = "\239\187\191"

-- Split text into lines; each item keeps its exact ending ("\n", "\r\n" or "").
local function split_lines(text)
  local lines = {}
  local pos, n = 1, #text
  while pos <= n do
    local nl = text:find("\n", pos, true)
    if nl then
      lines[#lines + 1] = text:sub(pos, nl)
      pos = nl + 1
    else
      lines[#lines + 1] = text:sub(pos)
      pos = n + 1
    end
  end
  return lines
end

local function strip_eol(line)
  return (line:gsub("\r?\n$", ""))
end

local ESCAPES = { n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["$"] = "$", ["`"] = "`" }

-- Scan a quoted value starting right after the opening quote at `s:sub(i)`.
-- Returns value, rest-after-closing-quote or nil when the quote does not close on `s`.
local function scan_quoted(s, i, q, acc)
  local out = acc
  while i <= #s do
    local c = s:sub(i, i)
    if c == q then
      return table.concat(out), s:sub(i + 1)
    elseif c == "\\" and q == '"' and i < #s then
      local e = s:sub(i + 1, i + 1)
      out[#out + 1] = ESCAPES[e] or ("\\" .. e)
      i = i + 2
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return nil
end

function M.parse(text, name)
  name = name or ".env"
  if text:sub(1, 3) == BOM then text = text:sub(4) end
  local raw = split_lines(text)
  local vars, entries = {}, {}
  local i = 1
  while i <= #raw do
    local line = strip_eol(raw[i])
    local first = i
    if line:match("^%s*$") or line:match("^%s*#") then
      i = i + 1
    else
      local body = line:gsub("^%s+", "")
      local exported = false
      local rest_export = body:match("^export%s+(.*)$")
      if rest_export and rest_export:match("^[%a_]") then
        body, exported = rest_export, true
      end
      local key, after = body:match("^([%a_][%w_%.%-]*)%s*=(.*)$")
      if not key then
        if body:match("^[%a_][%w_%.%-]*%s*$") or body:match("^[%a_][%w_%.%-]*%s*:") then
          return nil, ("%s:%d: expected KEY=VALUE"):format(name, i)
        end
        -- never the line's text: it may be a secret (a key on the line after `ALLOY_API_KEY=`)
        if body:match("^[^=%s]+%s*=") then
          return nil, ("%s:%d: invalid variable name (letters, digits and _ only, not starting with a digit)")
            :format(name, i)
        end
        return nil, ("%s:%d: expected KEY=VALUE"):format(name, i)
      end
      local value, comment, quote
      local lead = after:match("^[ \t]*")
      local v = after:sub(#lead + 1)
      local q = v:sub(1, 1)
      if q == '"' or q == "'" or q == "`" then
        quote = q
        local acc = {}
        local val, tail = scan_quoted(v, 2, q, acc)
        while not val do
          -- the quote spans lines: keep a newline and continue on the next raw line
          if i >= #raw then
            local kind = q == '"' and "double" or (q == "'" and "single" or "backtick")
            return nil, ("%s:%d: unterminated %s-quoted value for %s"):format(name, first, kind, key)
          end
          i = i + 1
          acc[#acc + 1] = "\n"
          val, tail = scan_quoted(strip_eol(raw[i]), 1, q, acc)
        end
        value = val
        local c = tail:match("^%s*(#.*)$")
        if c then
          comment = c
        elseif not tail:match("^%s*$") then
          return nil, ("%s:%d: unexpected text after the closing quote of %s"):format(name, i, key)
        end
      else
        local cpos = after:find("%s#")
        if cpos then
          comment = after:sub(cpos):match("^%s*(.*)$")
          after = after:sub(1, cpos - 1)
        end
        value = after:match("^%s*(.-)%s*$")
      end
      vars[key] = value
      entries[#entries + 1] = { key = key, value = value, first = first, last = i,
                                export = exported, comment = comment, quote = quote }
      i = i + 1
    end
  end
  return vars, entries
end

local KIND = { directory = "a directory", fifo = "a FIFO", socket = "a socket", device = "a device",
               other = "something else" }

-- An env file is text a person wrote: anything bigger is not one (and is not read whole).
M.MAX_SIZE = 1024 * 1024

-- A path that can be read like a file: info of a regular file, or of what a symlink leads
-- to (info.via says so, for messages) | nil, msg, errno. A FIFO would block a read forever, a directory has no text, a
-- device (/dev/zero) no end. A link that leads nowhere is not a missing file: "ENOENT"
-- means nothing is there at all.
function M.readable_kind(path)
  local alloy = require "alloy"
  local info, ierr, errno = alloy.file_info(path)
  if not info then return nil, ierr, errno end
  local via = ""
  if info.type == "link" then
    via = " (through a symbolic link)"
    info, ierr, errno = alloy.file_info(path, true)
    if not info then
      if errno == "ENOENT" or errno == "ENOTDIR" then
        return nil, path .. " is a symbolic link to nothing (its target does not exist)", "EDANGLING"
      elseif errno == "ELOOP" then
        return nil, path .. " is a symbolic link that loops", errno
      end
      return nil, ierr, errno
    end
  end
  if KIND[info.type] then
    return nil, ("%s is %s%s, not a regular file"):format(path, KIND[info.type], via), "EINVAL"
  end
  info.via = via
  return info
end

-- The text of a file.  -> text | nil, msg, errno
local function read_file(path)
  local info, ierr, errno = M.readable_kind(path)
  if not info then return nil, ierr, errno end
  if info.size > M.MAX_SIZE then
    return nil, ("%s is larger than %d bytes%s: not an env file"):format(path, M.MAX_SIZE, info.via), "EFBIG"
  end
  local f, err = io.open(path, "rb")
  if not f then
    return nil, tostring(err):find(path, 1, true) and err or (path .. ": cannot be read"), "EIO"
  end
  -- a cap on the read too: the file may have grown since it was looked at
  local text, rerr = f:read(M.MAX_SIZE + 1)
  f:close()
  text = text or (rerr == nil and "" or nil)
  if not text then return nil, ("%s: cannot be read (%s)"):format(path, tostring(rerr)), "EIO" end
  if #text > M.MAX_SIZE then
    return nil, ("%s is larger than %d bytes: not an env file"):format(path, M.MAX_SIZE), "EFBIG"
  end
  return text
end

function M.load(path)
  local text, err, errno = read_file(path)
  if not text then return nil, err, errno end
  return M.parse(text, path)
end

-- Octal permissions ("600") of an existing file, or nil (also for a symlink: its own mode
-- says nothing about its target's).
function M.mode(path)
  local info = require("alloy").file_info(path)
  if not info or info.type ~= "file" then return nil end
  return info.mode:sub(-3)
end

-- True when the octal mode string lets group or others read the file.
local function readable_by_others(mode)
  if not mode or #mode < 3 then return false end
  local g, o = tonumber(mode:sub(-2, -2)), tonumber(mode:sub(-1))
  return (g and g >= 4) or (o and o >= 4) or false
end

-- A shell word for s; nil when s holds a control character (no path checked here should).
local function shell_word(s)
  if s:find("%c") then return nil end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- True when the file at `path` is in a git work tree and git does not ignore it, so a commit
-- would take it along. A .git entry is looked for upward first (relative paths cannot tell
-- where / is: 64 levels), so outside a repository no process starts; then git decides
-- (.gitignore files, .git/info/exclude, core.excludesFile; a tracked file is not ignored).
-- No git, or any doubt: false.
local function unignored_by_git(path)
  local dir, name = path:match("^(.*)/([^/]+)$")
  if not dir then dir, name = ".", path end
  if dir == "" then dir = "/" end
  local up = dir
  for _ = 1, 64 do
    if require("alloy").file_info(up .. "/.git") then
      local qdir, qname = shell_word(dir), shell_word(name)
      if not (qdir and qname) then return false end
      -- core.fsmonitor off: a repository's own config must not run a program here
      local a, _, c = os.execute("git -c core.fsmonitor=false -C " .. qdir .. " check-ignore -q -- " .. qname
        .. " >/dev/null 2>&1")
      -- exit 1: not ignored (0: ignored, 128: not a work tree, 127: no git)
      local code = type(a) == "number" and math.floor(a / 256) or c -- Lua 5.1: the wait status
      return code == 1
    end
    up = up .. "/.."
  end
  return false
end

-- Warnings for a file that holds the API key: readable by other users, or not ignored by git.
function M.exposed(path)
  local out = {}
  local mode = M.mode(path)
  if readable_by_others(mode) then
    out[#out + 1] = ("%s holds ALLOY_API_KEY and is readable by other users (mode %s); run: chmod 600 %s")
      :format(path, mode, path)
  end
  if unignored_by_git(path) then
    out[#out + 1] = ("%s holds ALLOY_API_KEY and is not ignored by git (a commit would publish the key); add it to"
      .. " .gitignore"):format(path)
  end
  return out
end

-- A value as it should be written, so that neither a dotenv reader nor a shell sourcing
-- the file expands anything in it (newlines and tabs stay literal inside the quotes): bare
-- when that is unambiguous; single-quoted when it has $ or ` (a shell would run "$(...)")
-- and no single quote; else double-quoted with \\ \" \$ \` escaped.
local function format_value(value)
  if value:match("^[%w_%-%.%/:@%+,=%%~]*$") then return value end
  if value:find("[%$`]") and not value:find("'", 1, true) then return "'" .. value .. "'" end
  return '"' .. value:gsub('[\\"%$`]', "\\%0") .. '"'
end

-- Set KEY=value in the file at `path`, keeping every other line (comments, blank lines,
-- ordering, line endings, BOM) exactly as it was.  The last assignment of KEY (the one
-- that wins) is rewritten in place, keeping its `export ` prefix and trailing comment;
-- when KEY is absent a line is appended.  A file that does not parse is left untouched.
function M.set(path, key, value)
  assert(type(key) == "string" and key:match("^[%a_][%w_]*$"), "dotenv.set: bad key")
  value = tostring(value)
  -- other control characters have no form both a shell and a dotenv reader give back
  if value:find("[%z\1-\8\11-\31\127]") then
    return nil, ("the value for %s has control characters; not written to %s"):format(key, path)
  end
  local info = require("alloy").file_info(path)
  if info and info.type == "link" then
    return nil, path .. " is a symbolic link, which would be replaced by a plain file (edit its target instead)"
  end
  local text, rerr, errno = read_file(path)
  if not text then
    if errno ~= "ENOENT" then return nil, rerr end
    text = ""
  end
  local vars, entries = M.parse(text, path)
  if not vars then return nil, entries end
  local lines = split_lines(text)
  local crlf = text:find("\r\n", 1, true) ~= nil
  local default_eol = crlf and "\r\n" or "\n"
  local target
  for _, e in ipairs(entries) do
    if e.key == key then target = e end
  end
  local function render(e, eol)
    return (e and e.export and "export " or "") .. key .. "=" .. format_value(value)
      .. ((e and e.comment) and (" " .. e.comment) or "") .. eol
  end
  if target then
    local eol = lines[target.last]:match("\r?\n$") or ""
    local prefix = ""
    if target.first == 1 and lines[1]:sub(1, 3) == BOM then prefix = BOM end
    local lead = (target.first == 1 and lines[1]:sub(#prefix + 1) or lines[target.first]):match("^[ \t]*")
    lines[target.first] = prefix .. lead .. render(target, eol)
    for k = target.last, target.first + 1, -1 do table.remove(lines, k) end
  else
    if #lines > 0 and not lines[#lines]:match("\n$") then
      lines[#lines] = lines[#lines] .. default_eol
    end
    lines[#lines + 1] = render(nil, default_eol)
  end
  -- atomic, 0600 while written; an existing file keeps its mode
  return require("alloy").replace_file(path, table.concat(lines), info and info.mode or "600")
end

return M
