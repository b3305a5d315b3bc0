-- alloy action (describe_action.lua): what an action takes: its parameters and body fields,
-- which are required, their types; --json prints the schema as the API serves it.
local M = {
  summary = "what an action takes: its parameters, required or not, their types",
  description = "Show what a connector's action takes: one line per parameter (name, where it goes: query, path,"
    .. " header or body, type, required) on stdout, aligned under a header on a terminal, tab-separated when"
    .. " piped; the action's name, method and description on stderr.",
  arguments = {
    { "connector", "The connector id, as {cmd:connectors} lists it (slack, notion, ...).", optional = true },
    { "action", "The action id, as {cmd:actions} <connector> lists it.", optional = true },
  },
  examples = {
    { "slack chat_postMessage" },
    { "slack chat_postMessage --json" },
  },
}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (5.1)

-- An example `run` with every required parameter as a placeholder; a name that is not a
-- plain word (the server's text) is left out, and "…" says so.
local function example(ctx, connector, id, params)
  local ids = require "alloy.ids"
  local words, body, left_out = { connector, id }, {}, false
  for _, p in ipairs(params) do
    local name = ids.word(p.name)
    local checked = p.where == "query" or p.where == "path" or p.where == "body"
    if p.required and checked and not name then
      left_out = true
    elseif p.required and (p.where == "query" or p.where == "path") then
      words[#words + 1] = "--" .. p.where
      words[#words + 1] = ("%s=<%s>"):format(name, name)
    elseif p.required and p.where == "body" then
      body[#body + 1] = ('"%s":…'):format(name)
    end
  end
  if #body > 0 then
    words[#words + 1] = "--body"
    words[#words + 1] = "{" .. table.concat(body, ",") .. "}"
  end
  if left_out then words[#words + 1] = "…" end
  return ctx:command("run", unpack_(words))
end

function M.run(ctx)
  local actions = require "alloy.actions"
  local out = ctx.out
  local connector, id = require("alloy.cmd.actions").checked(ctx, true)
  if not connector then return nil, id end
  ctx:config()
  local action, res = ctx:check(actions.schema(ctx:client(), connector, id))
  if ctx.args.json then
    out:out(require("alloy.json").as_sent(res.body) .. "\n")
    return 0
  end
  local params = actions.params(action)
  local method = type(action.httpMethod) == "string" and action.httpMethod:upper() or "?"
  local name = action.displayName or action.name
  out:say("%s (%s): %s %s", id, type(name) == "string" and name or "-", method,
    type(action.path) == "string" and action.path or "")
  if type(action.description) == "string" then out:say("%s", action.description) end
  if #params == 0 then
    out:say("It takes no parameters.")
  else
    local rows = { { "NAME", "IN", "TYPE", "REQUIRED", "DESCRIPTION" } }
    for _, p in ipairs(params) do
      rows[#rows + 1] = { p.name, p.where, p.type, p.required and "yes" or "no", p.description or "" }
    end
    ctx:print_table(rows)
  end
  for _, p in ipairs(params) do
    if p.required and p.where == "header" then
      out:say("Header parameters (%s) are filled from the connection, or given with --header name=value.", p.name)
      break
    end
  end
  out:say("Run it: %s", example(ctx, connector, id, params))
  return 0
end

return M
