-- alloy.context: what a command's run(ctx) is given.
--
--   ctx.args, ctx.out (alloy.output), ctx.name (the command's name), ctx.cmd (its declaration)
--   ctx:invocation()      -> how this command was run (alloy.invocation), made when first asked:
--                            only a hint, a next step or help names anything
--   ctx:config(need)      -> the configuration, loaded once (need = { user = true }: the user id
--                            must be set too); a failure is raised
--   ctx:client()          -> the client (alloy.new from the configuration), made once
--   ctx:new_client(extra) -> another client, with extra options (retries = 0, ...)
--                            Every client is closed when the command ends.
--   ctx:call(op, ...)     -> client:<op>(...) -> value, res; a failure (with its op) is raised
--   ctx:secret(value)     a value never printed: masked in the output and by every client
--   ctx:check(v, err, ...)-> v, ... when v is not nil, else raises err
--   ctx:print_table(rows) the result table on stdout (aligned on a terminal, TSV otherwise)
--   ctx:say_table(rows)   a table of narrative on stderr (always aligned)
--   ctx:prompt()          the alloy.prompt of this output
--   ctx:command(name, ...) = ctx:invocation():command(name, ...): a command line to paste
--   ctx:hint(f)           -> f's hint and next step as one line (alloy.hints when f has none,
--                            in this command's words)
-- A failure raised inside run(ctx) ends the command like a returned nil, err.
local config = require "alloy.config"
local failure = require "alloy.failure"

local M = {}

-- ------------------------------------------------------------------ invocation

local Context = {}
Context.__index = Context

-- o: { row, cmd, args, out, mode } (mode: how it was run, alloy.invocation's); a host running a
-- flow itself may also give cfg (its configuration) and client (its own: not closed by
-- ctx:close).
function M.new(o)
  return setmetatable({ name = o.row and o.row.name, row = o.row, cmd = o.cmd, args = o.args or {},
                        out = o.out or require("alloy.output").new(), mode = o.mode or "alloy",
                        cfg = o.cfg, default_client = o.client, clients = {}, secrets = {} }, Context)
end

function Context:invocation()
  self.inv = self.inv or require("alloy.invocation").new(self.mode, self.row, self.args)
  return self.inv
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
  for _, s in ipairs(self.secrets) do client:add_secret(s) end
  return client
end

-- A value never to be printed (a connector's secret field): masked, as the key is, in all
-- that is printed from now on and in every client's messages and --verbose lines (a shorter
-- one whole).
function Context:secret(value)
  self.out:secret(value, math.min(8, #value))
  self.secrets[#self.secrets + 1] = value
  for _, client in ipairs(self.clients) do client:add_secret(value) end
  if self.default_client then self.default_client:add_secret(value) end -- a host's own, too
end

function Context:client()
  self.default_client = self.default_client or self:new_client()
  return self.default_client
end

function Context:call(op, ...)
  local v, res = failure.call(self:client(), op, ...)
  if failure.is(res) then error(res, 0) end
  return v, res
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
  return self:invocation():command(name, ...)
end

function Context:hint(f)
  return self:invocation():hint(f, self)
end


return M
