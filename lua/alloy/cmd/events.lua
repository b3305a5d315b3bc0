-- alloy events: the account's custom events (GET /events), each with the fields of its body:
-- what `alloy trigger` takes.
local M = {
  summary = "the custom events and the fields of their data",
  description = "List the custom events workflows can be triggered by (GET /events): name, the fields of the"
    .. " data the event carries, and its description, one per line on stdout. --json prints each event's body"
    .. " example as the API serves it.",
  examples = {
    { "" },
    { "--json | jq '.events[0].body'" },
  },
}

local HEADER = { "NAME", "FIELDS", "DESCRIPTION" }

-- The body's field names, sorted (an object's keys have no order).
local function fields(body)
  local out = {}
  if type(body) == "table" then
    for k in pairs(body) do out[#out + 1] = tostring(k) end
  end
  table.sort(out)
  return #out > 0 and table.concat(out, ", ") or "-"
end

function M.run(ctx)
  local json, text = require "alloy.json", require("alloy.tables").text
  local out = ctx.out
  ctx:config()
  local list = ctx:check(require("alloy.embedded").events(ctx:client()))
  if ctx.args.json then
    out:out(json.encode({ count = #list, events = json.array(list) }) .. "\n")
  elseif #list > 0 then
    local rows = { HEADER }
    for _, e in ipairs(list) do rows[#rows + 1] = { text(e.name), fields(e.body), text(e.description) } end
    ctx:print_table(rows)
  end
  out:say("%d custom event%s", #list, #list == 1 and "" or "s")
  if #list > 0 then
    out:say("Trigger one for a user: %s", ctx:command("trigger", "<event>", "--data", "<json>", "-u", "<user>"))
  end
  return 0
end

return M
