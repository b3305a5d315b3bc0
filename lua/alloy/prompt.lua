-- alloy.prompt: questions to the person at the terminal (answers, choices, confirmations,
-- secrets). Prompts go to stderr through an alloy.output (redacted, one printable line each);
-- answers are read from stdin.
--
--   local p = prompt.new(out)
--   p:interactive()            -> whether stdin is a terminal (someone can answer)
--   p:answer(question, tty)    -> one line of stdin, trimmed (the question shown when tty) | nil
--                                 at end of input
--   p:ask(question, what)      -> a non-empty answer (asked again on an empty one; piped
--                                 answers work too) | nil, err (end of input: status 2)
--   p:confirm(question)        -> true for y/yes, false for anything else or end of input
--   p:choose(question, names)  -> one of names (typed in full, any case, or its number) | nil, err
--   p:secret(question)         -> a line read from the terminal without echo | nil, err
--   p:approve(yes, question, what) -> true when `yes` or the person answered y; else nil, err:
--                                 declined (status 1, a plain line, not an error) or nobody to
--                                 ask (status 2)
-- Nothing here passes user data to a shell: the one shell command (for the secret) is a fixed
-- string, and the value comes back over a pipe.
local failure = require "alloy.failure"
local output = require "alloy.output"

local M = {}
local Prompt = {}
Prompt.__index = Prompt

function M.new(out)
  return setmetatable({ o = out }, Prompt)
end

function Prompt:interactive() -- luacheck: ignore 212
  return output.isatty(io.stdin)
end

function Prompt:answer(question, tty)
  if tty then
    self.o:err(output.line(question))
    io.stderr:flush()
  end
  local line = io.stdin:read("*l")
  if line == nil then
    if tty then self.o:err("\n") end
    return nil
  end
  return (line:gsub("\r$", ""):match("^%s*(.-)%s*$"))
end

function Prompt:ask(question, what)
  local tty = self:interactive()
  while true do
    local line = self:answer(question, tty)
    if line == nil then
      return nil, failure.usage("no " .. what .. " given (end of input)",
        "answer the prompt, or pass it as a flag (see --help)")
    end
    if line ~= "" then return line end
    -- piped input: an empty line is not an answer either; keep reading
    if not tty then self.o:err(output.line(question), "(empty answer, reading the next line)\n") end
  end
end

function Prompt:confirm(question)
  local v = self:answer(question .. " [y/N] ", true)
  v = v and v:lower()
  return v == "y" or v == "yes"
end

function Prompt:choose(question, names)
  for i, n in ipairs(names) do self.o:err(("  %d) %s\n"):format(i, output.line(n))) end
  while true do
    local v, err = self:ask(question, "choice")
    if not v then return nil, err end
    local i = tonumber(v)
    if i and names[i] then return names[i] end
    for _, n in ipairs(names) do
      if n:lower() == v:lower() then return n end
    end
    self.o:err(output.line("answer one of: " .. table.concat(names, ", ")), "\n")
  end
end

-- The shell turns echo off on the terminal, reads one line, and turns echo back on whatever
-- happens (end of input, Ctrl-C, TERM). A fixed string: nothing typed reaches it as code, and
-- the value comes back on the pipe (never argv: printf is a shell builtin).
local READ_SECRET = "exec 3</dev/tty || exit 3; stty -echo <&3; trap 'stty echo <&3; exit 130' INT TERM HUP;"
  .. " printf .; IFS= read -r v <&3; s=$?; stty echo <&3; [ $s -eq 0 ] || exit 4; printf '%s' \"$v\""

function Prompt:secret(question)
  question = output.line(question)
  for _ = 1, 3 do
    local p = io.popen(READ_SECRET, "r")
    -- The shell prints "." once echo is off: only then is the prompt shown, so nothing typed
    -- (or pasted) after it can be echoed. Ctrl-C reaches this process too (the interpreter
    -- then raises "interrupted"): wait for the shell all the same, so that echo is back on
    -- before anything else happens.
    local read_ok, ready, v = true, nil, nil
    if p then read_ok, ready = pcall(p.read, p, 1) end
    if read_ok and ready == "." then
      self.o:err(question)
      io.stderr:flush()
      read_ok, v = pcall(p.read, p, "*a")
    end
    local ok, _, code = true, nil, 0
    if p then ok, _, code = p:close() end
    if ready == "." then self.o:err("\n") end
    if not read_ok then error(ready == "." and v or ready, 0) end
    if ready ~= "." then
      return nil, failure.usage("cannot read a secret: no terminal", "pipe it on stdin or set it in the environment")
    end
    if code == 130 then error("interrupted", 0) end
    if v == nil or (ok ~= true and code ~= 0 and v == "") then
      return nil, failure.usage("no answer (end of input)", "type the value at the prompt")
    end
    v = v:gsub("\r$", "")
    if v ~= "" then return v end
  end
  return nil, failure.usage("no value given (three empty answers)", "type the value at the prompt")
end

function Prompt:approve(yes, question, what)
  if yes then return true end
  if not self:interactive() then
    return nil, failure.usage(("not deleting %s: stdin is not a terminal, so nobody can confirm"):format(what),
      "pass --yes to delete without asking")
  end
  if self:confirm(question) then return true end
  return nil, failure.declined(("Not deleted: %s (you answered no)."):format(what))
end

return M
