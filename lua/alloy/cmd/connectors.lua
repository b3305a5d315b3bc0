-- alloy connectors (list_connectors.lua): the connectors this API key can connect, with
-- their authentication types (from each connector's credential metadata); or one connector.
local M = {
  summary = "the connectors this API key can connect (id, name, how each connects)",
  description = "List the connectors available to this API key: id, name and how each is connected (oauth2, with"
    .. " the inputs it asks for, or the fields of an API-key, basic or bearer credential) on stdout. Two requests"
    .. " whatever the number of connectors: the list, and every connector's metadata at once.",
  arguments = { { "connector", "One connector instead of the list: its name and each of its authentication"
    .. " types (type, OAuth or not, whether an auth config is required, the fields it asks for).", optional = true } },
  options = {
    { "-s --search", "<text>", "Only connectors whose id or name contains this text (any case)." },
  },
  examples = {
    { "" },
    { "--search slack" },
    { "--json | jq -r '.connectors[].id'" },
    { "acuityScheduling" },
  },
}

-- "oauth2", "oauth2 (shopSubdomain)", "fields: userId, apiKey", or "?" (not read).
function M.auth_text(a)
  if not a then return "?" end
  local fields = table.concat(a.fields, ", ")
  if a.oauth then return "oauth2" .. (fields ~= "" and (" (" .. fields .. ")") or "") end
  return "fields: " .. (fields ~= "" and fields or "none")
end

-- One connector: GET /connectors/{id} and its credential metadata. stdout: a row for each
-- authentication type; --json: {"connector": the object as the API sent it, "auth": [...]}.
local function one(ctx)
  local connectors, failure, ids, json = require "alloy.connectors", require "alloy.failure",
    require "alloy.ids", require "alloy.json"
  local args, out = ctx.args, ctx.out
  if args.search then return nil, failure.usage("give a connector or --search, not both") end
  local id = ctx:check(ids.check_name("connector", args.connector))
  ctx:config()
  local client = ctx:client()
  local item, msg, code, failed = client:get_connector(id)
  if item == nil then
    if code == "HTTP_404" then return nil, connectors.unknown(client, id) end
    return nil, failure.api(msg, code, failed, "get_connector")
  end
  local res = msg -- on success: the value, then the response
  local entries = ctx:check(connectors.metadata(client, id))
  if args.json then
    local auth = {}
    for i, e in ipairs(entries) do
      local fields = {}
      for k, f in ipairs(e.fields) do fields[k] = { name = f.name, required = f.required, secret = f.secret } end
      auth[i] = { type = e.type, oauth = e.oauth, authConfigRequired = e.authConfigRequired,
                  fields = json.array(fields) }
    end
    out:out(('{"connector":%s,"auth":%s}\n'):format(json.as_sent(res.body), json.encode(json.array(auth))))
  else
    local rows = { { "TYPE", "OAUTH", "AUTH CONFIG", "FIELDS" } }
    for _, e in ipairs(entries) do
      local names = {}
      for k, f in ipairs(e.fields) do names[k] = f.name .. (f.secret and " (secret)" or "") end
      rows[#rows + 1] = { e.type, e.oauth and "yes" or "no", e.authConfigRequired and "required" or "-",
                          #names > 0 and table.concat(names, ", ") or "-" }
    end
    ctx:print_table(rows)
  end
  local name = type(item) == "table" and type(item.name) == "string" and item.name or nil
  out:say("%s%s: %d authentication type%s", id, name and (" (" .. name .. ")") or "", #entries,
    #entries == 1 and "" or "s")
  out:say("Connect it with: %s", ctx:command("connect", id))
  return 0
end

function M.run(ctx)
  if ctx.args.connector then return one(ctx) end
  local connectors = require "alloy.connectors"
  local ids = require "alloy.ids"
  local json = require "alloy.json"
  local args, out = ctx.args, ctx.out
  ctx:config()
  local list = ctx:check(connectors.list(ctx:client()))
  if args.search then
    local want, shown = args.search:lower(), {}
    for _, c in ipairs(list) do
      if c.id:lower():find(want, 1, true) or c.name:lower():find(want, 1, true) then shown[#shown + 1] = c end
    end
    list = shown
  end
  local names = {}
  for i, c in ipairs(list) do names[i] = c.id end
  local auth, requests = ctx:check(connectors.auth_all(ctx:client(), names))
  if requests > 2 then
    ctx.out:say("(the metadata of all connectors at once is not available here: read one by one, %d requests)",
      requests - 1)
  end

  if args.json then
    local items = {}
    for i, c in ipairs(list) do
      local a = auth[c.id]
      items[i] = { id = c.id, name = c.name, oauth = json.null, fields = json.null }
      if a then items[i].oauth, items[i].fields = a.oauth, json.array(a.fields) end
    end
    out:out(json.encode({ count = #list, search = args.search or json.null, connectors = json.array(items) }) .. "\n")
  elseif #list > 0 then
    local rows = { { "ID", "NAME", "AUTH" } }
    for _, c in ipairs(list) do rows[#rows + 1] = { c.id, c.name, M.auth_text(auth[c.id]) } end
    ctx:print_table(rows)
  end
  if #list == 0 then
    out:say(args.search and ("No connector matches %q."):format(args.search) or "No connectors.")
    return 0
  end
  out:say("%d connector%s%s", #list, #list == 1 and "" or "s",
    args.search and (" matching " .. ("%q"):format(args.search)) or "")
  local unread, undescribed = 0, 0
  for _, c in ipairs(list) do
    if auth[c.id] == false then unread = unread + 1 elseif auth[c.id] == nil then undescribed = undescribed + 1 end
  end
  if undescribed > 0 then
    out:warn("%d connector%s listed without metadata (AUTH ?)", undescribed, undescribed == 1 and " is" or "s are")
  end
  if unread > 0 then
    -- never exit 0 with part of the work not done
    return nil, require("alloy.failure").new(("could not read how %d of %d connectors are connected"):format(unread,
      #list), "their AUTH is \"?\" above; run again later (--verbose shows what the API answered)")
  end
  -- a command to copy: only an id that is a plain word (a server's id could be "$(...)")
  local example = "notion"
  for _, c in ipairs(list) do
    if ids.word(c.id) then example = c.id; break end
  end
  out:say("Connect one with: %s", ctx:command("connect", example))
  return 0
end

return M
