-- alloy.context: what a command's run(ctx) is given, and how it names other commands.
--
-- The invocation (how this command was started, so that every hint and next step can be
-- pasted where it is printed):
--   local inv = context.invocation(mode, row)   mode "script" (lua5.4 lua/x.lua), "installed"
--                                               (alloy-x) or "alloy" (alloy x, lua5.4 lua/alloy_main.lua x)
--   inv:command(name, ...)  -> the command line that runs command `name` here with the words
--                              `...`, then the options this run was given that the user would
--                              have to give again (--env-file, --region, -u): "alloy connections
--                              notion --env-file .env.sandbox". Words are shell-quoted when they
--                              are not plain; "<placeholders>" and "…" stay as they are.
--   inv:usage_name(row)     -> the name --help shows ("alloy-list-connections", "alloy connections")
--
-- The context:
--   ctx.args, ctx.out (alloy.output), ctx.inv, ctx.name (the command's name)
--   ctx:config(need)      -> the configuration, loaded once (need = { user = true }: the user id
--                            must be set too); a failure is raised
--   ctx:client()          -> the client (alloy.new from the configuration), made once
--   ctx:new_client(extra) -> another client, with extra options (retries = 0, ...)
--                            Every client is closed when the command ends.
--   ctx:call(op, ...)     -> client:<op>(...) -> value, res; a failure (with its op) is raised
--   ctx:check(v, err, ...)-> v, ... when v is not nil, else raises err
--   ctx:print_table(rows) the result table on stdout (aligned on a terminal, TSV otherwise)
--   ctx:say_table(rows)   a table of narrative on stderr (always aligned)
--   ctx:prompt()          the alloy.prompt of this output
--   ctx:command(name, ...) = ctx.inv:command(name, ...)
--   ctx:hint(f)           -> f's hint and next step as one line (alloy.hints when f has none)
-- A failure raised inside run(ctx) ends the command like a returned nil, err.
local config = require "alloy.config"
local failure = require "alloy.failure"
local ids = require "alloy.ids"

local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

-- ------------------------------------------------------------------ invocation

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

function M.invocation(mode, row)
  local a0 = type(arg) == "table" and type(arg[0]) == "string" and arg[0] or ""
  local inv = setmetatable({ mode = mode, row = row, carried = {}, user = nil }, Invocation)
  if a0:match("%.lua$") then
    inv.lua, inv.dir = checkout_form()
  end
  inv.base = a0:match("[^/\\]+$") or "alloy"
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
  return ids.quote(w)
end

function Invocation:command(name, ...)
  local commands = require "alloy.commands"
  local row = name and assert(commands.by_name[name], "alloy.context: unknown command " .. tostring(name))
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

-- ------------------------------------------------------------------ context

local Context = {}
Context.__index = Context

-- o: { row, cmd, args, out, inv }; a host running a flow itself may also give cfg (its
-- configuration) and client (its own: not closed by ctx:close).
function M.new(o)
  return setmetatable({ name = o.row and o.row.name, row = o.row, cmd = o.cmd, args = o.args or {},
                        out = o.out or require("alloy.output").new(), inv = o.inv or M.invocation("alloy"),
                        cfg = o.cfg, default_client = o.client, clients = {} }, Context)
end

function Context:check(v, ...) -- luacheck: ignore 212 (a method, for ctx:check(f()))
  if v == nil then error((...), 0) end
  return v, ...
end

function Context:config(need)
  if not self.cfg then
    local cfg = self:check(config.load{ flags = self.args })
    for _, w in ipairs(cfg.warnings) do self.out:warn("%s", w) end
    self.out:secret(cfg.api_key)
    if self.args.verbose then
      self.out:err("configuration (", cfg.env_file and ("env file " .. cfg.env_file) or "no env file", "):\n")
      for _, line in ipairs(config.describe(cfg)) do self.out:err("  ", line, "\n") end
    end
    self.cfg = cfg
  end
  self:check(config.require(self.cfg, need))
  return self.cfg
end

function Context:new_client(extra)
  local options = { debug = self.args.verbose or nil }
  for k, v in pairs(extra or {}) do options[k] = v end
  local client = self:check(config.client(self:config(), options))
  self.clients[#self.clients + 1] = client
  return client
end

function Context:client()
  self.default_client = self.default_client or self:new_client()
  return self.default_client
end

function Context:call(op, ...)
  local client = self:client()
  local v, msg, code, res = client[op](client, ...)
  if v == nil and type(msg) == "string" then error(failure.api(msg, code, res, op), 0) end
  return v, msg
end

function Context:close()
  for _, c in ipairs(self.clients) do c:close() end
  self.clients, self.default_client = {}, nil
end

function Context:print_table(rows)
  self.out:out(require("alloy.tables").render(rows, self.out:isatty(io.stdout)))
end

function Context:say_table(rows)
  if not self.out.quiet then self.out:err(require("alloy.tables").columns(rows)) end
end

function Context:prompt()
  self.prompter = self.prompter or require("alloy.prompt").new(self.out)
  return self.prompter
end

function Context:command(name, ...)
  return self.inv:command(name, ...)
end

-- How this command names a setting, for hints: "ALLOY_USER_ID / --user" (the flag only when
-- the command has it).
function Context:setting_name(field)
  local has = require("alloy.cmdline").has_option
  for _, v in ipairs(config.VARS) do
    if v.field == field then
      local flag = v.flag and "--" .. v.flag:gsub("_", "-")
      return v.var .. ((flag and self.cmd and has(self.cmd, flag)) and (" / " .. flag) or "")
    end
  end
  return field
end

function Context:view()
  local cfg, args = self.cfg or {}, self.args
  return {
    setting = function(field) return self:setting_name(field) end,
    value = function(field)
      if field == "user_id" then return cfg.user_id or args.user end
      return cfg[field]
    end,
    connector = args.connector, action = args.action,
    command = function(...) return self:command(...) end,
  }
end

function Context:hint(f)
  local hint = rawget(f, "hint")
  if hint == nil and f.code then hint = require("alloy.hints").for_failure(f, self:view()) end
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
