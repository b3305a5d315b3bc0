-- alloy.prompt: questions to the person at the terminal (confirmations, choices, secrets).
--
-- M.interactive()            -> whether stdin is a terminal (someone can answer)
-- M.confirm(question)        -> true (y/yes) | false (anything else, or end of input)
-- M.choose(question, names)  -> one of names (typed in full, or its number) | nil, err
-- M.secret(question)         -> a line read from the terminal without echo | nil, err
-- M.approve(yes, question, what) -> true when --yes was given or the person answered y;
--                               else nil, err (declined: status 1; nobody to ask: status 2)
-- Prompts go to stderr; answers are read from stdin. Nothing here ever passes user data to
-- a shell: the one shell command (for the secret) is a fixed string, the value comes back
-- over a pipe.
local failure = require "alloy.failure"

local M = {}

function M.interactive()
  return require("alloy.cli").isatty(io.stdin)
end

-- Asked only on a terminal (see approve); an empty answer or end of input is N.
function M.confirm(question)
  local v = require("alloy.cli").answer(question .. " [y/N] ", true)
  v = v and v:lower()
  return v == "y" or v == "yes"
end

function M.choose(question, names)
  local cli = require "alloy.cli"
  for i, n in ipairs(names) do cli.err(("  %d) %s\n"):format(i, cli.prompt_text(n))) end
  while true do
    local v, err = cli.ask(question, "choice")
    if not v then return nil, err end
    local i = tonumber(v)
    if i and names[i] then return names[i] end
    for _, n in ipairs(names) do
      if n:lower() == v:lower() then return n end
    end
    cli.err(cli.prompt_text("answer one of: " .. table.concat(names, ", ")), "\n")
  end
end

-- The shell turns echo off on the terminal, reads one line, and turns echo back on
-- whatever happens (end of input, Ctrl-C, TERM). A fixed string: nothing typed reaches it
-- as code, and the value comes back on the pipe (never argv: printf is a shell builtin).
local READ_SECRET = "exec 3</dev/tty || exit 3; stty -echo <&3; trap 'stty echo <&3; exit 130' INT TERM HUP;"
  .. " printf .; IFS= read -r v <&3; s=$?; stty echo <&3; [ $s -eq 0 ] || exit 4; printf '%s' \"$v\""

function M.secret(question)
  question = require("alloy.cli").prompt_text(question)
  for _ = 1, 3 do
    local p = io.popen(READ_SECRET, "r")
    -- The shell prints "." once echo is off: only then is the prompt shown, so nothing typed
    -- (or pasted) after it can be echoed. Ctrl-C reaches this process too (the interpreter
    -- then raises "interrupted"): wait for the shell all the same, so that echo is back on
    -- before anything else happens.
    local read_ok, ready, v = true, nil, nil
    if p then read_ok, ready = pcall(p.read, p, 1) end
    if read_ok and ready == "." then
      local cli = require "alloy.cli"
      cli.err(question)
      io.stderr:flush()
      read_ok, v = pcall(p.read, p, "*a")
    end
    local ok, _, code = true, nil, 0
    if p then ok, _, code = p:close() end
    if ready == "." then require("alloy.cli").err("\n") end
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

function M.approve(yes, question, what)
  if yes then return true end
  if not M.interactive() then
    return nil, failure.usage(("not deleting %s: stdin is not a terminal, so nobody can confirm"):format(what),
      "pass --yes to delete without asking")
  end
  if M.confirm(question) then return true end
  return nil, failure.new(("not deleted: %s (not confirmed)"):format(what), "answer y to delete, or pass --yes")
end

return M
