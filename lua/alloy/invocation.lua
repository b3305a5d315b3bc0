-- alloy.invocation: how a command was run, and so how to name commands and settings in what
-- it prints, so that every hint and next step can be pasted where it is printed.
--
--   local inv = invocation.new(mode, row, args)  mode "script" (lua5.4 lua/x.lua), "installed"
--                            (alloy-x) or "alloy" (alloy x, lua5.4 lua/alloy_main.lua x); args:
--                            the parsed arguments, for the options a pasted command must repeat
--   inv:command(name, ...)  -> the command line that runs command `name` here with the words
--                              `...`, then the options this run was given that the user would
--                              have to give again (--env-file, --region, -u): "alloy connections
--                              notion --env-file .env.sandbox". Words are shell-quoted when they
--                              are not plain; "<placeholders>" and "…" stay as they are.
--   inv:prefix(row)         -> the words that start command `row` (nil: the alloy command) here
--   inv:usage_name(row)     -> the name --help shows ("alloy-list-connections", "alloy connections")
--   inv:hint(f, ctx)        -> f's hint, then its next step ("<hint>; <lead>: <command>"), in the
--                              words of ctx's command: its options, its commands
local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

local Invocation = {}
Invocation.__index = Invocation

-- The interpreter and the script's directory, for "lua5.4 lua/x.lua": the interpreter is
-- the lowest index of arg (`lua5.4 -e '...' lua/x.lua` has the -e code at -1).
local function checkout_form()
  local i = -1
  while arg[i - 1] ~= nil do i = i - 1 end
  local interp = type(arg[i]) == "string" and arg[i]:match("[^/]+$") or "lua5.4"
  return interp, arg[0]:match("^(.*)/[^/]*$") or "."
end

function M.new(mode, row, args)
  local a0 = type(arg) == "table" and type(arg[0]) == "string" and arg[0] or ""
  local inv = setmetatable({ mode = mode, row = row, carried = {}, user = nil }, Invocation)
  if a0:match("%.lua$") then
    inv.lua, inv.dir = checkout_form()
  end
  inv.base = a0:match("[^/\\]+$") or "alloy"
  if args then inv:carry(args) end
  return inv
end

-- The words that start command `row` (nil: the alloy command itself) here.
function Invocation:prefix(row)
  local main = require("alloy.commands").MAIN
  local scripted = self.mode ~= "alloy" and row and row.script
  if self.lua then -- from a checkout
    local file = scripted and row.script or main.script
    local words = ("%s %s/%s.lua"):format(self.lua, self.dir, file)
    return (row and not scripted) and (words .. " " .. row.name) or words
  end
  if scripted then return row.installed end
  local alloy = self.mode == "alloy" and self.base or main.installed
  return row and (alloy .. " " .. row.name) or alloy
end

function Invocation:usage_name(row)
  if self.mode == "alloy" then return self.base .. (row and (" " .. row.name) or "") end
  return self.base
end

-- Remembers what of args must be given again in a pasted command.
function Invocation:carry(args)
  self.carried = {}
  if args.env_file then self.carried[#self.carried + 1] = { "--env-file", args.env_file } end
  if args.region then self.carried[#self.carried + 1] = { "--region", args.region } end
  self.user = args.user and { "-u", args.user } or nil
end

local function word(w)
  w = tostring(w)
  -- placeholders to fill in: <id>, name=<name>, …
  if w == "…" or w:match("^<[%w _%-%.]*>$") or w:match("^[%w_%.%-]+=<[%w_%.%-]+>$") then return w end
  return require("alloy.ids").quote(w)
end

function Invocation:command(name, ...)
  local commands = require "alloy.commands"
  local row = name and assert(commands.by_name[name], "alloy.invocation: unknown command " .. tostring(name))
  local parts = { self:prefix(row) }
  for i = 1, select("#", ...) do
    local w = select(i, ...)
    if w ~= nil then parts[#parts + 1] = word(w) end
  end
  for _, c in ipairs(self.carried) do parts[#parts + 1] = c[1] .. " " .. word(c[2]) end
  if self.user and row and require(row.module).user then
    parts[#parts + 1] = self.user[1] .. " " .. word(self.user[2])
  end
  return table.concat(parts, " ")
end

-- How this command names a setting, for hints: "ALLOY_USER_ID / --user" (the flag only when
-- the command has it).
local function setting_name(cmd, field)
  local has = require("alloy.cmdline").has_option
  for _, v in ipairs(require("alloy.config").VARS) do
    if v.field == field then
      local flag = v.flag and "--" .. v.flag:gsub("_", "-")
      return v.var .. ((flag and cmd and has(cmd, flag)) and (" / " .. flag) or "")
    end
  end
  return field
end

-- The view alloy.hints words its advice through, for the command of ctx.
function Invocation:view(ctx)
  local cfg, args = ctx.cfg or {}, ctx.args
  return {
    setting = function(field) return setting_name(ctx.cmd, field) end,
    value = function(field)
      if field == "user_id" then return cfg.user_id or args.user end
      return cfg[field]
    end,
    connector = args.connector, action = args.action,
    command = function(...) return self:command(...) end,
  }
end

function Invocation:hint(f, ctx)
  local hint = rawget(f, "hint")
  if hint == nil and f.code then hint = require("alloy.hints").for_failure(f, self:view(ctx)) end
  if f.next then
    local ok, line = pcall(self.command, self, unpack_(f.next, 1, #f.next))
    if ok then
      line = (f.next_lead and (f.next_lead .. ": ") or "") .. line
      hint = hint and (hint .. "; " .. line) or line
    end
  end
  return hint
end

return M
