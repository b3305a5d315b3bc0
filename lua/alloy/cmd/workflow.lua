-- alloy workflow run: run one of a user's workflows that has a webhook trigger
-- (POST /run/workflow), named by its id or by its name.
local M = {
  summary = "run a user's webhook-triggered workflow by id or name",
  description = "Run one of the user's workflows that has a webhook trigger (POST /run/workflow), with data;"
    .. " workflows triggered by a custom event run with {cmd:trigger}. The API's answer is printed on stdout"
    .. " as JSON; the run is in {cmd:logs}.",
  user = true,
  arguments = {
    { "action", "run (the only one).", optional = true },
    { "workflow", "The workflow: its id (24 hex digits) or its name, as {cmd:workflows} lists them.", optional = true },
  },
  options = {
    { "--id", "<id>", "The workflow by id (instead of WORKFLOW)." },
    { "--name", "<name>", "The workflow by name (instead of WORKFLOW; a name that looks like an id)." },
    { "-d --data", "<json>", "The trigger's data: a JSON object, @file, or - for stdin (default {})." },
  },
  examples = {
    { [[run 'Sync a contact to HubSpot' --data '{"email":"ada@example.com","fullName":"Ada Lovelace"}']] },
    { "run 66a200000000000000000004 --data @contact.json -u ada" },
  },
  notes = [[
WORKFLOW is an id when it is 24 hex digits, else a name. Give the workflow once: by WORKFLOW, --id
or --name (two of them is exit 2). A run is not retried automatically, except when the connection
was refused or the API answered 429 with Retry-After: the workflow may have run.]],
}

-- The workflow the arguments name: {id =} or {name =}.  -> workflow | nil, err
local function workflow_of(args)
  local failure, ids = require "alloy.failure", require "alloy.ids"
  local given = (args.workflow and 1 or 0) + (args.id and 1 or 0) + (args.name and 1 or 0)
  if given > 1 then
    return nil, failure.usage("the workflow is given twice: give it once, by id or by name",
      "WORKFLOW, or --id <id>, or --name <name>")
  end
  if given == 0 then
    return nil, failure.suggest(failure.usage("no workflow given"), "the user's workflows", "workflows")
  end
  local id = args.id or (args.workflow and ids.object_id(args.workflow) and args.workflow)
  if id then
    local _, bad = ids.check_object_id("workflow", id, "--name <name> for a workflow by name")
    if bad then return nil, bad end
    return { id = id }
  end
  local name = args.name or args.workflow
  if name:match("^%s*$") or #name > 200 or name:find("%c") then
    return nil, failure.usage("a workflow name is 1 to 200 characters of text on one line")
  end
  return { name = name }
end

function M.run(ctx)
  local failure, embedded, each = require "alloy.failure", require "alloy.embedded", require "alloy.each"
  local args, out = ctx.args, ctx.out
  if (args.action or "run") ~= "run" then
    return nil, failure.suggest(failure.usage(("unknown action %q"):format(require("alloy.output").printable(
      args.action)), "the one action is run: workflow run WORKFLOW"), "for example", "workflow", "run", "<workflow>")
  end
  local workflow = ctx:check(workflow_of(args))
  local data = ctx:check(require("alloy.input").object(args.data, "--data", "the data")) or {}
  local cfg = ctx:config{ user = true }
  local v, res = ctx:check(embedded.run_workflow(ctx:client(), workflow, cfg.user_id, data))
  out:out(each.as_sent(v, res) .. "\n")
  out:say("Ran workflow %s for user %s. Its runs: %s", workflow.id or ("%q"):format(workflow.name), cfg.user_id,
    workflow.id and ctx:command("logs", "--workflow", workflow.id) or ctx:command("logs", "--since", "5m"))
  return 0
end

return M
