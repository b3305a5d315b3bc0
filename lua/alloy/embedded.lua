-- alloy.embedded: Alloy Embedded's custom events and a user's workflows, and running them
-- (the 2025-09 reference: POST /run/event, POST /run/workflow, GET /events, and
-- GET /integrations?userId=, its only listing of a user's workflows).
--
-- M.check_event(name)   -> name | nil, err (status 2): a custom event's name, 1 to 200 bytes of
--                          text on one line
-- M.check_data(data)    -> data | nil, err (status 2): a table that is a JSON object
-- M.trigger(client, event, user, data)   -> answer, res | nil, err: every workflow of the user
--                          listening to the event runs (user: an id or a username)
-- M.run_workflow(client, workflow, user, data) -> answer, res | nil, err: workflow = {id =} or
--                          {name =} (one of them: both is a usage error); webhook-triggered only
-- M.events(client)      -> { {name, description, body}, ... } | nil, err
-- M.workflows(client, user) -> the user's workflows, one row each: { {workflowId, name,
--                          integrationId, integration, installed, active, version, connectors}, ... }
--                          | nil, err
local failure = require "alloy.failure"

local M = {}

function M.check_event(name)
  if type(name) ~= "string" or name:match("^%s*$") or #name > 200 or name:find("%c") then
    return nil, failure.suggest(failure.usage(("%q is not an event name (1 to 200 characters of text on one line)")
      :format(require("alloy.output").printable(tostring(name):sub(1, 60)))), "the custom events", "events")
  end
  return name
end

function M.check_data(data)
  if type(data) ~= "table" or data[1] ~= nil or data == require("alloy.json").null then
    return nil, failure.usage("the data is not a JSON object", [[give an object: {"name":"value"}]])
  end
  return data
end

-- A named operation: value, res | nil, err; an empty answer is {}.
local function call(client, op, ...)
  local v, res = failure.call(client, op, ...)
  if failure.is(res) then return nil, res end
  return v == nil and {} or v, res
end

function M.trigger(client, event, user, data)
  local ok, err = M.check_event(event)
  if ok then ok, err = M.check_data(data) end
  if not ok then return nil, err end
  return call(client, "run_event", { event = event, userId = user, data = data })
end

function M.run_workflow(client, workflow, user, data)
  if type(workflow) ~= "table" or (workflow.id == nil) == (workflow.name == nil) then
    return nil, failure.usage("give the workflow by id or by name, not both", "--id <id> or --name <name>")
  end
  local ok, err = M.check_data(data)
  if not ok then return nil, err end
  return call(client, "run_workflow", { workflowId = workflow.id, workflowName = workflow.name, userId = user,
                                        data = data })
end

local function is_list(v) return type(v) == "table" and (v[1] ~= nil or next(v) == nil) end

function M.events(client)
  local list, err = call(client, "list_events")
  if not list then return nil, err end
  local out = {}
  for _, e in ipairs(list) do
    if type(e) == "table" then out[#out + 1] = e end
  end
  return out
end

-- The integrations of a user, flattened: one row per workflow, with its integration's id and
-- description beside it.
function M.workflows(client, user)
  local list, err = call(client, "list_integrations", { query = { userId = user } })
  if not list then return nil, err end
  local out = {}
  for _, g in ipairs(list) do
    if type(g) == "table" and is_list(g.workflows) then
      for _, w in ipairs(g.workflows) do
        if type(w) == "table" then
          out[#out + 1] = { workflowId = w.workflowId, name = w.name, integrationId = g.integrationId,
                            integration = g.description or g.name, installed = w.installed, active = w.active,
                            version = w.version, connectors = w.connectors }
        end
      end
    end
  end
  return out
end

return M
