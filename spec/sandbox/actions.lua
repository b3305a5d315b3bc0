-- The actions the sandbox's connectors offer: resources, action schemas in the documented
-- shape ({"action": {id, displayName, description, httpMethod, path, parameters, requestBody}})
-- and what an execute answers. Slack and Notion have their own; every other connector the
-- generic records set. Each connector has a read action with a required query parameter and
-- a create action with a required body field.
local util = require "sandbox.util"

local M = {}

local function param(name, where, required, description, type_)
  return { name = name, ["in"] = where, required = required, description = description,
           schema = { type = type_ or "string" } }
end

-- body: { required = {...}, properties = { name = {type, description} } } or nil
local function action(id, name, method, path, description, parameters, body)
  local requestBody
  if body then
    local props = {}
    for k, v in pairs(body.properties) do props[k] = { type = v[1], description = v[2] } end
    requestBody = { type = "object", required = util.list(body.required or {}), properties = props }
  end
  return { id = id, displayName = name, description = description, httpMethod = method, path = path,
           parameters = util.list(parameters or {}), requestBody = requestBody }
end

-- The credential supplies the token header: listed as the example in the docs shows it.
local TOKEN = param("token", "header", true, "Authentication token (supplied by the credential)")

local SLACK = {
  { name = "chat", displayName = "Chat", actions = {
    action("chat_postMessage", "Post a message", "post", "/chat.postMessage", "Sends a message to a channel.",
      { TOKEN }, { required = { "channel", "text" }, properties = {
        channel = { "string", "Channel, private group, or IM channel to send the message to" },
        text = { "string", "The message text" },
        thread_ts = { "string", "Another message's ts value to reply in its thread" } } }),
  } },
  { name = "conversations", displayName = "Conversations", actions = {
    action("conversations_history", "Conversation history", "get", "/conversations.history",
      "Fetches a conversation's history of messages and events.",
      { TOKEN, param("channel", "query", true, "Conversation ID to fetch history for"),
        param("limit", "query", false, "The maximum number of items to return", "integer") }),
    action("conversations_list", "List conversations", "get", "/conversations.list",
      "Lists all channels in a Slack team.",
      { TOKEN, param("limit", "query", false, "The maximum number of items to return", "integer") }),
  } },
  { name = "users", displayName = "Users", actions = {
    action("users_info", "Get user info", "get", "/users.info", "Gets information about a user.",
      { TOKEN, param("user", "query", true, "User to get info on") }),
  } },
}

local NOTION = {
  { name = "pages", displayName = "Pages", actions = {
    action("create_page", "Create a page", "post", "/v1/pages", "Creates a new page in a database or page.",
      nil, { required = { "parent", "properties" }, properties = {
        parent = { "object", "The parent page or database" },
        properties = { "object", "Property values of the new page" },
        children = { "array", "Page content as blocks" } } }),
    action("get_page", "Retrieve a page", "get", "/v1/pages/{page_id}", "Retrieves a page's properties.",
      { param("page_id", "path", true, "Identifier of the page") }),
  } },
  { name = "search", displayName = "Search", actions = {
    action("search", "Search", "post", "/v1/search", "Searches pages and databases shared with the integration.",
      { param("page_size", "query", false, "Results per page", "integer") },
      { properties = { query = { "string", "Text to look for in titles" } } }),
  } },
}

local GENERIC = {
  { name = "records", displayName = "Records", actions = {
    action("list_records", "List records", "get", "/records", "Lists the records matching a query.",
      { param("query", "query", true, "What to look for"),
        param("limit", "query", false, "The maximum number of records", "integer") }),
    action("create_record", "Create a record", "post", "/records", "Creates a record.",
      nil, { required = { "name" }, properties = {
        name = { "string", "The record's name" }, notes = { "string", "Free text" } } }),
    action("get_record", "Get a record", "get", "/records/{recordId}", "Retrieves one record.",
      { param("recordId", "path", true, "Identifier of the record") }),
  } },
}

function M.resources(connector_id)
  if connector_id == "slack" then return SLACK end
  if connector_id == "notion" then return NOTION end
  return GENERIC
end

function M.find(connector_id, action_id)
  for _, r in ipairs(M.resources(connector_id)) do
    for _, a in ipairs(r.actions) do
      if a.id == action_id then return a, r end
    end
  end
end

-- GET /connectors/{id}/resources in one of the shapes a spec may ask for (the docs show none):
-- "resources" (default: {"resources": [...]}), "data", "array" (top level), or "strings"
-- ({"resources": [...]} with each resource's actions as bare ids).
function M.listing(connector_id, shape)
  local out = util.list()
  for i, r in ipairs(M.resources(connector_id)) do
    local acts = util.list()
    for k, a in ipairs(r.actions) do
      acts[k] = shape == "strings" and a.id
        or { id = a.id, displayName = a.displayName, description = a.description, httpMethod = a.httpMethod }
    end
    out[i] = { name = r.name, displayName = r.displayName, actions = acts }
  end
  if shape == "array" then return out end
  return { [shape == "data" and "data" or "resources"] = out }
end

return M
