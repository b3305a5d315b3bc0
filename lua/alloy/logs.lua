-- alloy.logs: the executions of workflows (GET /logs), newest first, page by page, and a
-- follower that returns each new entry once.
--
-- The documented parameters: workflowId, associatedUserId, skip, limit, sortBy, sortOrder and
-- filters (a JSON array of {columns, operators, userinput, condition}, each {value = ...}). The
-- answer is documented only by an example, {notifications = [...], lastFetched, pagination};
-- a bare list, or one under `data`, is read too.
--
-- M.query(f)   -> query | nil, err (status 2): f = {workflow = id, user = id or username,
--                 errors = true (only failed executions: message executionError), since = time
--                 (alloy.timefmt.parse: ISO 8601 or "15m", "2h", "7d" ago), now = os.time()}
-- M.page(client, query, skip, limit) -> entries, pagination (or nil) | nil, err: one page,
--                 newest first
-- M.fetch(client, query, limit, page_size) -> entries (newest first, at most limit) | nil, err:
--                 pages of page_size (default M.PAGE) as long as they are needed
-- M.follower(client, query, opts) -> f: f:poll() -> the entries not returned before, oldest
--                 first | nil, err. The first poll returns the newest opts.limit (default 20);
--                 each later one reads pages from the newest until one holds an entry already
--                 seen (at most opts.max_pages, default 20, a poll). opts.page_size.
-- M.key(entry) -> what tells entries apart: _id, else data.executionId, else its JSON
-- M.row(entry) -> { time, message, workflow, user, execution }: cells for a table
local failure = require "alloy.failure"

local M = {}

M.PAGE = 50 -- the reference's example pages by 10; no maximum is documented

local function filter(column, operator, value)
  return { columns = { value = column }, operators = { value = operator }, userinput = { value = value },
           condition = { value = "and" } }
end

function M.query(f)
  local ids, json = require "alloy.ids", require "alloy.json"
  local q, filters = { sortBy = "createdAt", sortOrder = "desc" }, {}
  if f.workflow ~= nil then
    local _, bad = ids.check_object_id("workflow", f.workflow)
    if bad then return nil, failure.suggest(bad, "the user's workflows", "workflows") end
    q.workflowId = f.workflow
  end
  q.associatedUserId = f.user
  if f.errors then filters[#filters + 1] = filter("message", "equals", "executionError") end
  if f.since ~= nil then
    local timefmt = require "alloy.timefmt"
    local t, why = timefmt.parse(f.since, f.now)
    if not t then
      return nil, failure.usage(("--since %q: %s"):format(require("alloy.output").printable(f.since), why),
        "--since 2025-10-01T12:00:00Z, or --since 2h")
    end
    filters[#filters + 1] = filter("createdAt", "greaterthan", timefmt.iso_ms(t))
  end
  if #filters > 0 then q.filters = json.encode(json.array(filters)) end
  return q
end

local function is_list(v) return type(v) == "table" and (v[1] ~= nil or next(v) == nil) end

-- The entries of an answer, in any of its shapes, and its pagination when it has one.
local function entries_of(body)
  if type(body) ~= "table" then return nil end
  if is_list(body.notifications) then return body.notifications, body.pagination end
  if is_list(body.data) then return body.data, body.pagination end
  if is_list(body) then return body end
end

function M.page(client, query, skip, limit)
  local q = {}
  for k, v in pairs(query) do q[k] = v end
  q.skip, q.limit = skip, limit
  local body, res = failure.call(client, "list_logs", { query = q })
  if failure.is(res) then return nil, res end
  local list, pagination = entries_of(body)
  if not list then
    return nil, failure.api("BAD_RESPONSE: the logs' answer has no list (notifications, data, or an array)"
      .. " (GET /logs)", "BAD_RESPONSE", res, "list_logs")
  end
  local out = {}
  for _, e in ipairs(list) do
    if type(e) == "table" then out[#out + 1] = e end
  end
  return out, type(pagination) == "table" and pagination or nil, #list
end

function M.fetch(client, query, limit, page_size)
  page_size = page_size or M.PAGE
  local out, skip = {}, 0
  while #out < limit do
    local want = math.min(page_size, limit - #out)
    local page, pagination, served = M.page(client, query, skip, want)
    if not page then return nil, pagination end
    for _, e in ipairs(page) do out[#out + 1] = e end
    skip = skip + served
    local total = pagination and tonumber(pagination.totalItems)
    -- the last page: empty, the total reached, or (without a total) short of what was asked
    if served == 0 or (total and skip >= total) or (not total and served < want) then break end
  end
  for i = #out, limit + 1, -1 do out[i] = nil end
  return out
end

function M.key(e)
  if type(e._id) == "string" then return "_id " .. e._id end
  if type(e.data) == "table" and type(e.data.executionId) == "string" then return "execution " .. e.data.executionId end
  return "json " .. require("alloy.json").encode(e)
end

local Follower = {}
Follower.__index = Follower

function M.follower(client, query, opts)
  opts = opts or {}
  return setmetatable({ client = client, query = query, limit = opts.limit or 20,
                        page_size = opts.page_size or M.PAGE, max_pages = opts.max_pages or 20,
                        seen = nil }, Follower)
end

-- The entries of newest (newest first) not seen before, oldest first, at most `show` of them
-- (the newest). What the next poll knows: this poll's entries and the previous poll's (an
-- entry two polls down the list cannot come back to its top).
local function take_new(self, newest, show)
  local fresh, current = {}, {}
  for _, e in ipairs(newest) do
    local k = M.key(e)
    if not self.seen[k] and not current[k] and #fresh < show then fresh[#fresh + 1] = e end
    current[k] = true
  end
  local seen = {}
  for k in pairs(self.current or {}) do seen[k] = true end
  for k in pairs(current) do seen[k] = true end
  self.current, self.seen = current, seen
  local out = {}
  for i = #fresh, 1, -1 do out[#out + 1] = fresh[i] end
  return out
end

function Follower:poll()
  if not self.seen then
    -- the first page is read whole even when fewer are shown: what is not shown is not new
    local first, err = M.fetch(self.client, self.query, math.max(self.limit, self.page_size), self.page_size)
    if not first then return nil, err end
    self.seen = {}
    return take_new(self, first, self.limit)
  end
  local newest, skip = {}, 0
  for _ = 1, self.max_pages do
    local page, err, served = M.page(self.client, self.query, skip, self.page_size)
    if not page then return nil, err end
    local known = false
    for _, e in ipairs(page) do
      newest[#newest + 1] = e
      known = known or self.seen[M.key(e)] ~= nil
    end
    skip = skip + served
    if known or served < self.page_size then break end
  end
  return take_new(self, newest, math.huge)
end

function M.row(e)
  local text = require("alloy.tables").text
  local user = type(e.user) == "table" and (e.user.email or e.user.fullName) or e.userId
  local workflow = type(e.forgeWorkflow) == "table" and e.forgeWorkflow.name or e.forgeWorkflowId or e.workflowId
  local execution = type(e.data) == "table" and e.data.executionId or e._id
  return { text(e.createdAt), text(e.message), text(workflow), text(user), text(execution) }
end

M.HEADER = { "TIME", "MESSAGE", "WORKFLOW", "USER", "EXECUTION" }

return M
