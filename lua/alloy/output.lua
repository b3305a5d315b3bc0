-- alloy.output: what a command prints, and how server text is made safe to print.
--
--   local o = output.new{ quiet = false }     -- stdout, stderr: io.stdout, io.stderr
--   o:secret(value [, window])  everything printed from now on has value's pieces masked
--                               (alloy.redactor: any piece of `window` bytes, default 8, in
--                               any case, percent-encoded, JSON-escaped or in base64)
--   o:out(text)                 the result, on stdout
--   o:err(...)                  text on stderr (prompts, errors)
--   o:say(fmt, ...)             narrative line on stderr, unless quiet; each string argument
--                               made one printable line (they carry server text)
--   o:warn(fmt, ...)            "warning: ..." on stderr, always
--   o:status(text)              a progress line on a terminal's stderr, redrawn in place;
--                               o:out clears it first, so a result never lands behind it
--   o:isatty(file)              whether io.stdout/io.stderr/io.stdin is a terminal
--
-- Module functions for server text:
--   M.printable(s)  the characters a terminal acts on become "?": C0 controls but newline and
--                   tab, DEL, C1 controls (as UTF-8, and raw bytes 0x80-0x9F that are not part
--                   of a UTF-8 character), and the bidirectional and line-separator marks
--   M.line(s)       M.printable, with newlines and tabs as blanks too: one line
--   M.cell(s)       a table cell: every control and mark as a blank
--   M.excerpt(v)    a server's value quoted in a message: its first 40 bytes as M.line, or
--                   what it is instead of a string ("none" for a missing one)
local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

-- Patterns of what a terminal acts on beyond ASCII controls: C1 controls as UTF-8 (U+0080-
-- U+009F), U+061C, U+200E/F, U+2028-U+202E, U+2066-U+2069.
M.MARKS = { "\194[\128-\159]", "\216\156", "\226\128[\142\143\168-\174]", "\226\129[\166-\169]" }

-- Raw bytes 0x80-0x9F that do not continue a UTF-8 lead byte: a terminal in an 8-bit mode
-- reads them as C1 controls (0x9B is CSI). M.raw_c1(s, with) puts `with` in their place.
local function raw_c1(s, with)
  if not s:find("[\128-\159]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = b >= 0xF0 and b <= 0xF4 and 4 or b >= 0xE0 and b <= 0xEF and 3 or b >= 0xC2 and b <= 0xDF and 2 or 1
    local ch = s:sub(i, i + len - 1)
    if len > 1 and not ch:match("^.[\128-\191]+$") or #ch < len then len, ch = 1, s:sub(i, i) end
    if len == 1 and b >= 0x80 and b <= 0x9F then ch = with end
    out[#out + 1] = ch
    i = i + len
  end
  return table.concat(out)
end

M.raw_c1 = raw_c1

local function scrub(s, first, with)
  s = raw_c1(tostring(s), with)
  s = s:gsub(first, with)
  for _, pat in ipairs(M.MARKS) do s = s:gsub(pat, with) end
  return s
end

function M.printable(s) return scrub(s, "[%z\1-\8\11-\31\127]", "?") end

function M.line(s) return M.printable((tostring(s):gsub("[\r\n\t]", " "))) end

function M.cell(s) return scrub(s, "[%z\1-\31\127]", " ") end

function M.excerpt(v)
  if v == nil or v == false then return "none" end
  if type(v) ~= "string" then return (type(v) == "userdata" and "null") or ("a " .. type(v)) end
  return M.line(v:sub(1, 40))
end

-- Whether `file` is a terminal: lua-term when it is installed, else the shell's `test -t` on
-- the same descriptor (the child inherits it).
local tty_cache = {}
function M.isatty(file)
  if tty_cache[file] == nil then
    local ok, term = pcall(require, "term")
    if ok and term.isatty then
      tty_cache[file] = term.isatty(file) and true or false
    else
      local fd = ({ [io.stdin] = 0, [io.stdout] = 1, [io.stderr] = 2 })[file]
      local r = fd and os.execute("test -t " .. fd)
      tty_cache[file] = r == true or r == 0
    end
  end
  return tty_cache[file]
end

local Output = {}
Output.__index = Output

function M.new(o)
  o = o or {}
  return setmetatable({ quiet = o.quiet or false, stdout = o.stdout or io.stdout, stderr = o.stderr or io.stderr,
                        secrets = {}, shown_status = false }, Output)
end

function Output:secret(value, window)
  if type(value) ~= "string" then return end
  for piece in value:gmatch("[^%z]+") do -- alloy.redact takes no NUL: each piece between them
    self.secrets[#self.secrets + 1] = require("alloy").redactor(piece, window and math.min(window, #piece))
  end
end

function Output:redacted(s)
  s = tostring(s)
  for _, redact in ipairs(self.secrets) do s = redact(s) end
  return s
end

function Output:isatty(file) return M.isatty(file) end -- luacheck: ignore 212

local function clear_status(self)
  if self.shown_status then
    self.stderr:write("\r\27[K")
    self.shown_status = false
  end
end

function Output:out(s)
  clear_status(self)
  self.stdout:write(self:redacted(s))
  self.stdout:flush()
end

function Output:err(...)
  clear_status(self)
  self.stderr:write(self:redacted(table.concat({ ... })))
end

function Output:status(text)
  if self.quiet or not M.isatty(self.stderr) then return end
  self.stderr:write("\r\27[K", self:redacted(M.line(text)))
  self.stderr:flush()
  self.shown_status = true
end

-- The arguments of a narrative format, each made one printable line; the format is ours.
local function narrative(fmt, ...)
  local n = select("#", ...)
  if n == 0 then return M.printable(fmt) end
  local args = { ... }
  for i = 1, n do
    if type(args[i]) == "string" then args[i] = M.line(args[i]) end
  end
  return M.printable(fmt:format(unpack_(args, 1, n)))
end
M.narrative = narrative

function Output:say(fmt, ...)
  if self.quiet then return end
  self:err(narrative(fmt, ...), "\n")
end

function Output:warn(fmt, ...)
  self:err("warning: ", narrative(fmt, ...), "\n")
end

return M
