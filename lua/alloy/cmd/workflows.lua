-- alloy workflows: a user's workflows, one line each (GET /integrations?userId=, the 2025-09
-- reference's only listing of a user's workflows, flattened from its integrations).
local M = {
  summary = "a user's workflows (id, name, integration, active)",
  description = "List the user's workflows, from their integrations (GET /integrations?userId=): id, name,"
    .. " integration and whether it is active, one per line on stdout (aligned under a header on a terminal,"
    .. " tab-separated rows when piped).",
  user = true,
  examples = {
    { "" },
    { "-u ada --json | jq -r '.workflows[].workflowId'" },
  },
}

local HEADER = { "ID", "NAME", "INTEGRATION", "ACTIVE" }

function M.run(ctx)
  local json, cell = require "alloy.json", require("alloy.tables").text
  local out = ctx.out
  local cfg = ctx:config{ user = true }
  local list = ctx:check(require("alloy.embedded").workflows(ctx:client(), cfg.user_id))
  if ctx.args.json then
    out:out(json.encode({ userId = cfg.user_id, count = #list, workflows = json.array(list) }) .. "\n")
  elseif #list > 0 then
    local rows = { HEADER }
    for _, w in ipairs(list) do
      rows[#rows + 1] = { cell(w.workflowId), cell(w.name), cell(w.integration), cell(w.active) }
    end
    ctx:print_table(rows)
  end
  out:say("%d workflow%s for user %s", #list, #list == 1 and "" or "s", cfg.user_id)
  if #list > 0 then
    out:say("Run one with a webhook trigger: %s", ctx:command("workflow", "run", "<id>", "--data", "<json>"))
  end
  return 0
end

return M
