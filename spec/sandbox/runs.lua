-- Embedded runs: the custom events and workflows every sandbox user has installed, the two
-- triggers (POST /run/event, POST /run/workflow), the integrations listing for a user, and
-- GET /logs over the executions the triggers recorded (filters, sorting, paging).
-- README.md says which of this Alloy documents and what the sandbox infers.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local api = require "sandbox.api"

local M = {}

local TEAM = "63fcaa053522280b5357aeec"

-- Custom events (GET /events): name, description, body (the schema as an example).
local EVENTS = {
  { name = "Order Created", description = "Triggers when an order is created in your app",
    body = { orderId = "0001", customerEmail = "support@example.com" } },
  { name = "Ticket Created", description = "Triggers when a ticket is opened in your app",
    body = { ticketName = "Printer on fire", customerEmail = "support@example.com" } },
}

-- The account's (parent) workflows, each with its trigger: a custom event or a webhook.
local function integration(id, name, connector)
  return { id = id, name = name, connector = connector, blockId = "blk" .. id:sub(-6),
           icon = "https://cdn.runalloy.com/icons/" .. connector .. ".png" }
end
local SLACK = integration("66a100000000000000000001", "Slack alerts", "slack")
local NOTION = integration("66a100000000000000000002", "Notion order log", "notion")
local HUBSPOT = integration("66a100000000000000000003", "HubSpot contact sync", "hubspot")
local WORKFLOWS = {
  { id = "66a200000000000000000001", name = "Post new orders to Slack", event = "Order Created", integration = SLACK },
  { id = "66a200000000000000000002", name = "Log orders in Notion", event = "Order Created", integration = NOTION },
  { id = "66a200000000000000000003", name = "Post new tickets to Slack", event = "Ticket Created",
    integration = SLACK },
  { id = "66a200000000000000000004", name = "Sync a contact to HubSpot", integration = HUBSPOT,
    webhook = { email = "jane@example.com", fullName = "Jane Doe" } },
}
M.EVENTS, M.WORKFLOWS = EVENTS, WORKFLOWS

local function trigger_body(w)
  if w.webhook then return w.webhook end
  for _, e in ipairs(EVENTS) do
    if e.name == w.event then return e.body end
  end
end

-- Each user's own copy of a workflow has its own id (the logs' workflowId; forgeWorkflowId
-- is the parent's): the user's id with the parent's last digits, stable for the sandbox's life.
local function child_id(w, u)
  return u.userId:sub(1, 20) .. w.id:sub(21, 24)
end

local function find_workflow(u, id, name)
  for _, w in ipairs(WORKFLOWS) do
    if (id == nil or id == w.id or id == child_id(w, u)) and (name == nil or name == w.name) then return w end
  end
end

local function is_object(v) return type(v) == "table" and (next(v) == nil or v[1] == nil) end

-- One execution of workflow w for user u with data: it fails (message executionError) when
-- data lacks a field of the trigger's body, as a workflow reading it would.
local function execute(w, u, data)
  local ok = true
  for k in pairs(trigger_body(w) or {}) do
    if data[k] == nil or data[k] == util.null then ok = false end
  end
  local now = util.iso_now()
  state.executions[#state.executions + 1] = {
    seq = state.next_seq(), _id = util.object_id(),
    message = ok and "executionSuccess" or "executionError",
    data = { executionId = util.object_id(), executionUuid = util.opaque_token():sub(1, 21) },
    startedAt = now, completedAt = now, createdAt = now, customVersion = false, workflowVersion = 1,
    teamId = TEAM, forgeWorkflowId = w.id, workflowId = child_id(w, u), userId = u.userId,
    user = { email = u.username, fullName = u.fullName or util.null },
    forgeWorkflow = { name = w.name, integrationId = { _id = w.integration.id, name = w.integration.name,
                                                      blockId = w.integration.blockId, icon = w.integration.icon } },
  }
end

-- userId (id or username) and data (an object) of a run body, or nil after a 400/404.
local function run_target(body)
  if body.userId == nil then return nil, util.invalid("userId", "is required") end
  if body.data == nil then return nil, util.invalid("data", "is required") end
  if not is_object(body.data) then return nil, util.invalid("data", "must be an object") end
  return api.user_or_404(body.userId)
end

function M.events()
  local out = util.list()
  for i, e in ipairs(EVENTS) do out[i] = { name = e.name, description = e.description, body = e.body } end
  return util.json(200, { data = out })
end

-- POST /run/event {event, userId, data}: runs every workflow of the user on that custom event.
function M.run_event(req)
  local body = api.json_body(req)
  if not body then return end
  if type(body.event) ~= "string" or body.event == "" then return util.invalid("event", "is required") end
  local u = run_target(body)
  if not u then return end
  local ran = 0
  for _, w in ipairs(WORKFLOWS) do
    if w.event == body.event then
      execute(w, u, body.data)
      ran = ran + 1
    end
  end
  if ran == 0 then return util.message(404, "Event not found") end
  return util.json(200, { message = "Event successfully triggered" })
end

-- POST /run/workflow {workflowId | workflowName, userId, data}: webhook-triggered workflows only.
function M.run_workflow(req)
  local body = api.json_body(req)
  if not body then return end
  local id, name = body.workflowId, body.workflowName
  if id == nil and name == nil then return util.invalid("workflowId", "or workflowName is required") end
  if (id ~= nil and type(id) ~= "string") or (name ~= nil and type(name) ~= "string") then
    return util.invalid(id ~= nil and "workflowId" or "workflowName", "must be a string")
  end
  local u = run_target(body)
  if not u then return end
  local w = find_workflow(u, id, name)
  if not w then return util.message(404, "Workflow not found") end
  if not w.webhook then
    return util.message(400, "Workflow '" .. w.name .. "' has no webhook trigger; custom events run through /run/event")
  end
  execute(w, u, body.data)
  return util.json(200, { message = "success" })
end

-- GET /integrations?userId=: the integrations and their workflows, as installed for a user
-- (every sandbox user has every workflow installed and active).
function M.integrations(req)
  local who = req.args.userId
  if type(who) ~= "string" or who == "" then return util.invalid("userId", "is required") end
  local u = api.user_or_404(who)
  if not u then return end
  local out, index = util.list(), {}
  for _, w in ipairs(WORKFLOWS) do
    local g = w.integration
    if not index[g.id] then
      index[g.id] = { integrationId = g.id, description = g.name, primaryConnector = g.connector, installed = true,
                      icon = g.icon, workflows = util.list(), credentials = util.list { g.connector } }
      out[#out + 1] = index[g.id]
    end
    local wf = index[g.id].workflows
    wf[#wf + 1] = { workflowId = w.id, name = w.name, installed = true, active = true, version = 1,
                    connectors = util.list { { name = g.name, connector = g.connector, icon = g.icon } } }
  end
  return util.json(200, { data = out })
end

-- Logs --------------------------------------------------------------------------------------

local SORT_BY = { createdAt = true, completedAt = true, message = true, userId = true }
local OPERATORS = {
  equals = function(a, b) return a == b end,
  notequals = function(a, b) return a ~= b end,
  contains = function(a, b) return a:find(b, 1, true) ~= nil end,
  notcontains = function(a, b) return a:find(b, 1, true) == nil end,
  greaterthan = function(a, b, x, y) if x and y then return x > y end return a > b end,
  lessthan = function(a, b, x, y) if x and y then return x < y end return a < b end,
}

local function field(entry, path)
  local v = entry
  for key in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[key]
  end
  if type(v) == "table" or v == util.null then return nil end
  return v
end

local function value_of(f, key)
  local v = type(f[key]) == "table" and f[key].value
  if type(v) == "number" or type(v) == "boolean" then v = tostring(v) end
  return v
end

-- filters (JSON text) -> predicate, or nil and a message. Each filter: {columns: {value},
-- operators: {value}, userinput: {value}, condition: {value: "and" | "or"}}, combined left
-- to right by the later filter's condition.
local function compile_filters(text)
  local list = util.decode(text)
  if type(list) ~= "table" or (next(list) ~= nil and list[1] == nil) then
    return nil, "filters must be a JSON array"
  end
  local checks = {}
  for i, f in ipairs(list) do
    local col, op = type(f) == "table" and value_of(f, "columns"), type(f) == "table" and value_of(f, "operators")
    local input, cond = type(f) == "table" and value_of(f, "userinput"), type(f) == "table" and value_of(f, "condition")
    if type(col) ~= "string" or col == "" then return nil, "filters[" .. i .. "].columns.value is required" end
    if not OPERATORS[op] then
      return nil, "filters[" .. i .. "].operators.value must be one of: equals, notequals, contains, notcontains, "
        .. "greaterthan, lessthan"
    end
    if type(input) ~= "string" then return nil, "filters[" .. i .. "].userinput.value is required" end
    if cond ~= nil and cond ~= "and" and cond ~= "or" then
      return nil, "filters[" .. i .. "].condition.value must be and or or"
    end
    checks[i] = { col = col, test = OPERATORS[op], input = input, cond = cond or "and" }
  end
  return function(entry)
    local result = true
    for i, c in ipairs(checks) do
      local v = field(entry, c.col)
      local ok = v ~= nil and c.test(tostring(v), c.input, tonumber(v), tonumber(c.input)) or false
      if c.test == OPERATORS.notequals or c.test == OPERATORS.notcontains then ok = v == nil or ok end
      if i == 1 then result = ok elseif c.cond == "or" then result = result or ok else result = result and ok end
    end
    return result
  end
end

local function count(args, name, default)
  local v = args[name]
  if v == nil then return default end
  local n = type(v) == "string" and v:match("^%d+$") and tonumber(v)
  if not n then return nil, name .. " must be a non-negative integer" end
  return n
end

local function public_entry(e)
  local out = {}
  for k, v in pairs(e) do
    if k ~= "seq" then out[k] = v end
  end
  return out
end

-- GET /logs?workflowId=&associatedUserId=&skip=&limit=&sortBy=&sortOrder=&filters=
function M.logs(req)
  local a = req.args
  local skip, err = count(a, "skip", 0)
  local limit
  if skip then limit, err = count(a, "limit", 10) end
  if err then return util.message(400, err) end
  local sort_by, order = a.sortBy or "createdAt", a.sortOrder or "desc"
  if not SORT_BY[sort_by] then
    return util.message(400, "sortBy must be one of: createdAt, completedAt, message, userId")
  end
  if order ~= "asc" and order ~= "desc" then return util.message(400, "sortOrder must be asc or desc") end
  local keep = function() return true end
  if a.filters ~= nil then
    local msg
    keep, msg = compile_filters(type(a.filters) == "string" and a.filters or "")
    if not keep then return util.message(400, msg) end
  end
  local user_id = a.associatedUserId
  if type(user_id) == "string" then
    local u = state.find_user(user_id)
    user_id = u and u.userId or user_id
  end
  local wf = a.workflowId
  local hits = {}
  for _, e in ipairs(state.executions) do
    if (type(wf) ~= "string" or e.forgeWorkflowId == wf or e.workflowId == wf)
        and (type(user_id) ~= "string" or e.userId == user_id) and keep(e) then
      hits[#hits + 1] = e
    end
  end
  table.sort(hits, function(x, y)
    local p, q = x[sort_by], y[sort_by]
    if p == q then p, q = x.seq, y.seq end
    if order == "asc" then return p < q end
    return p > q
  end)
  local page = util.list()
  for i = skip + 1, math.min(#hits, skip + limit) do page[#page + 1] = public_entry(hits[i]) end
  local shape = state.settings.logs_shape
  if shape == "array" then return util.json(200, page) end
  if shape == "data" then return util.json(200, { data = page }) end
  return util.json(200, { notifications = page, lastFetched = util.iso_now(), pagination = {
    totalItems = #hits, totalPages = limit > 0 and math.ceil(#hits / limit) or 0,
    currentPage = limit > 0 and math.floor(skip / limit) + 1 or 1, pageSize = limit,
  } })
end

return M
