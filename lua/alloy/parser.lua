-- alloy.parser: the argparse parser of a command's declaration (alloy.cmdline), with its help
-- text (description, examples, the configuration, the exit codes), --version, and the shell
-- completions. Loaded only when there is a command line to parse, or help to show.
--
-- M.new(cmd, inv, row [, name]) -> the parser of one command (named name, default as run)
-- M.alloy_parser(inv, load [, name]) -> the `alloy` command's parser, every command under it
--                    (load(row) -> the command's declaration)
-- M.completion_script(parser, shell) -> bash/zsh/fish completion text | nil, err
-- M.version_line(name) -> "name (lua-alloy 0.1.0, libcurl 7.88.1, Lua 5.4)"
local cmdline = require "alloy.cmdline"
local config = require "alloy.config"
local failure = require "alloy.failure"

local M = {}

-- The variables for a help text: "Variables: ALLOY_API_KEY (the API key ...), ...", each with
-- alloy.so's default where it has one, wrapped at `width` columns.
local function variables_text(width)
  local ok, alloy = pcall(require, "alloy")
  local defaults = ok and type(alloy) == "table" and alloy.defaults or {}
  local items = {}
  for _, v in ipairs(config.VARS) do
    local d = v.option and v.number and defaults[v.option]
    items[#items + 1] = ("%s (%s%s)"):format(v.var, v.help, d and (", default %g"):format(d) or "")
  end
  items[#items + 1] = "ALLOY_FIELD_<NAME> (a connector's secret field, for connect)"
  local lines, line = {}, "Variables:"
  for i, item in ipairs(items) do
    item = item .. (i < #items and "," or ".")
    if #line + 1 + #item > width then
      lines[#lines + 1] = line
      line = item
    else
      line = line .. " " .. item
    end
  end
  lines[#lines + 1] = line
  return table.concat(lines, "\n")
end

function M.version_line(name)
  local ok, alloy = pcall(require, "alloy")
  local lib = "lua-alloy, alloy.so not found"
  if ok and type(alloy) == "table" and alloy.VERSION then
    local cok, curl = pcall(function() return alloy.curl_version end)
    lib = ("lua-alloy %s, libcurl %s"):format(alloy.VERSION, cok and curl or "not loaded")
  end
  local jit = rawget(_G, "jit")
  return ("%s (%s, %s)"):format(name, lib, type(jit) == "table" and jit.version or _VERSION)
end

-- "{cmd:connect}" -> how to run that command here.
local function name_commands(text, inv)
  return text and (text:gsub("{cmd:([%w_%-]+)}", function(other) return inv:command(other) end))
end

-- "Examples:" and one line each: the command, its arguments, and a comment aligned after them
-- when every comment fits so, else each comment on the line below its command. A command is
-- never wrapped: it must paste as shown.
local function examples_text(prefix, list)
  local lines, width, shown = { "Examples:" }, 0, {}
  for i, e in ipairs(list) do
    shown[i] = prefix .. (e[1] ~= "" and (" " .. e[1]) or "")
    if e[2] and #shown[i] > width then width = #shown[i] end
  end
  local aligned = true
  for _, e in ipairs(list) do
    if e[2] and width + #e[2] > 90 then aligned = false end
  end
  for i, e in ipairs(list) do
    lines[#lines + 1] = "  " .. shown[i]
    if e[2] and aligned then
      lines[#lines] = lines[#lines] .. string.rep(" ", width - #shown[i]) .. "   " .. e[2]
    elseif e[2] then
      lines[#lines + 1] = "      " .. e[2]
    end
  end
  return table.concat(lines, "\n")
end

-- argparse wraps the epilog at help_max_width, which would split a long example (a deep
-- checkout's path) in the middle of a command: the examples stand in the epilog as this line,
-- replaced by the text after wrapping.
local EXAMPLES_MARK = "\1examples\1"

local function with_examples(p, text)
  local get_help = p.get_help
  p.get_help = function(self)
    local help = get_help(self)
    return (help:gsub(EXAMPLES_MARK, function() return text end, 1))
  end
  return p
end

local CONFIGURATION = "Configuration: flags > environment > .env (current directory, or --env-file) > defaults.\n"

-- The help text after the options: notes, the examples' mark, the configuration, exit codes.
local function epilog(cmd, inv)
  local parts = {}
  if cmd.notes then parts[#parts + 1] = name_commands(cmd.notes, inv) end
  if cmd.examples then parts[#parts + 1] = EXAMPLES_MARK end
  parts[#parts + 1] = CONFIGURATION .. variables_text(96) .. "\n" .. cmdline.EXIT_CODES
  return table.concat(parts, "\n\n")
end

-- Sets p's epilog, with cmd's examples run as `prefix`.
local function set_epilog(p, cmd, inv, prefix)
  p:epilog(epilog(cmd, inv))
  return cmd.examples and with_examples(p, examples_text(prefix, cmd.examples)) or p
end

-- argparse 0.7 shows each alias of an option that takes a value on a line of its own,
-- right-aligned; one line keeps every label at the left margin: "-c <id>, --connector <id>".
local function one_line_labels(p)
  for _, o in ipairs(p._options or {}) do
    local labels = o._get_label_lines
    if labels then
      o._get_label_lines = function(self)
        local lines = labels(self)
        for i, l in ipairs(lines) do lines[i] = l:match("^%s*(.-)$") end
        return { table.concat(lines, " ") }
      end
    end
  end
  return p
end

local function layout(p)
  if p.help_max_width then p:help_max_width(100) end
  if p.help_description_margin then p:help_description_margin(30) end
  return p
end

-- Adds cmd's arguments and options to p (a parser or an `alloy` subcommand).
local function declare(p, cmd, version_name, inv)
  for _, a in ipairs(cmd.arguments or {}) do
    local arg = p:argument(a[1], name_commands(a[2], inv))
    if a.optional then arg:args("?") end
  end
  cmdline.each_option(cmd, function(o)
    local opt
    if o[3] then
      opt = p:option(o[1], name_commands(o[3], inv)):argname(o[2])
      if o.same_as then opt:target(o.same_as .. "_option") end
      if o.many then opt:count("*") end
      if o.default ~= nil then opt:default(o.default) end
    else
      opt = p:flag(o[1], name_commands(o[2], inv))
    end
    return opt
  end)
  -- prints and exits inside argparse, like --help: no configuration is read
  p:flag("--version", "Print the versions (this command, lua-alloy, libcurl, Lua) and exit."):action(function()
    io.stdout:write(M.version_line(version_name), "\n")
    io.stdout:flush()
    os.exit(failure.OK)
  end)
  return one_line_labels(p)
end

function M.new(cmd, inv, row, name)
  local argparse = require "argparse"
  name = name or inv:usage_name(row)
  local p = layout(argparse(name, name_commands(cmd.description or cmd.summary, inv)))
  set_epilog(p, cmd, inv, inv:command(row.name))
  return declare(p, cmd, name, inv)
end

-- The `alloy` command's examples: a connection's life, from a user to an executed action.
local ALLOY_EXAMPLES = {
  { "token", "the JWT of ALLOY_USER_ID" },
  { "--env-file .env.sandbox connections", "options go before or after the command" },
  { "connectors --search notion" },
  { "connect notion --save", "connect it, save CONNECTION_ID to .env" },
  { "actions notion" },
  { "run notion search --body '{\"query\":\"roadmap\"}'" },
}

function M.alloy_parser(inv, load, name)
  local commands = require "alloy.commands"
  local p = layout(require("argparse")(name or inv:usage_name(nil), "Alloy from the shell: every lua-alloy command as a"
    .. " subcommand. Options such as --env-file, --user and --region work before or after the command's name."))
  p:epilog(EXAMPLES_MARK .. "\n\n"
    .. ("`%s help <command>` shows a command's options and examples.\n\n"):format(inv:prefix())
    .. CONFIGURATION .. variables_text(96) .. "\n" .. cmdline.EXIT_CODES)
  with_examples(p, examples_text(inv:prefix(), ALLOY_EXAMPLES))
  p:flag("--version", "Print the versions (lua-alloy, libcurl, Lua) and exit.")
  for _, row in ipairs(commands.LIST) do
    local cmd = load(row)
    local sub = layout(p:command(row.name, name_commands(cmd.description or cmd.summary, inv)))
    sub:summary(cmd.summary)
    set_epilog(sub, cmd, inv, inv:command(row.name))
    declare(sub, cmd, inv:usage_name(row), inv)
  end
  return p
end

-- `--completion bash|zsh|fish` for a parser; nil, err for another shell.
function M.completion_script(p, shell)
  if shell ~= "bash" and shell ~= "zsh" and shell ~= "fish" then
    return nil, failure.usage(("--completion takes bash, zsh or fish, not %q"):format(tostring(shell)))
  end
  return p["get_" .. shell .. "_complete"](p)
end

return M
