-- The sandbox's Embedded runs (events, workflows, integrations, logs) and the Connectivity
-- API's files with the storage host's stand-in, over real HTTP: the alloy client for Alloy's
-- hosts, plain LuaSocket for the presigned PUT (which must carry no Alloy header).
local Sandbox = require "sandbox"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local SLACK_ORDERS, NOTION_ORDERS = "66a200000000000000000001", "66a200000000000000000002"
local HUBSPOT_SYNC = "66a200000000000000000004"
local BODY, BODY_MD5_HEX, BODY_MD5 = "hello upload\n", "410b1586e6bdd59e710db93c2f8d3082", "QQsVhua91Z5xDbk8L40wgg=="
local OTHER_MD5 = "GuGUHsWCrGBQ+zCNCEpHNw==" -- of "other bytes\n"

describe("sandbox embedded runs and files", function()
  local sb, c, uid
  Sandbox.per_test_user("kai", function(s, id) sb, c, uid = s, s:client { retries = 0 }, id end)

  local function post(path, body, opts)
    local o = { method = "POST", path = path, json = body }
    for k, v in pairs(opts or {}) do o[k] = v end
    local res, msg, code, fres = c:request(o)
    return res or fres, code, msg
  end

  local function logs(query)
    return assert(c:request { path = "/logs", query = query }).json
  end

  describe("runs", function()
    it("triggers custom events and webhook workflows for a user, as the reference answers", function()
      local events = assert(c:request { path = "/events" }).json.data
      assert.equal("Order Created", events[1].name)
      local res = post("/run/event", { event = "Order Created", userId = "kai", data = { orderId = "7" } })
      assert.same({ message = "Event successfully triggered" }, res.json)
      res = post("/run/workflow", { workflowId = HUBSPOT_SYNC, userId = uid,
                                    data = { email = "a@b.c", fullName = "A" } })
      assert.same({ message = "success" }, res.json)
      res = post("/run/workflow", { workflowName = "Sync a contact to HubSpot", userId = uid, data = {} })
      assert.same({ message = "success" }, res.json)
      -- refused: a custom-event workflow, unknown names, missing or malformed fields
      local cases = {
        { "/run/workflow", { workflowId = SLACK_ORDERS, userId = uid, data = {} }, 400, "has no webhook trigger" },
        { "/run/workflow", { workflowName = "nope", userId = uid, data = {} }, 404, "Workflow not found" },
        { "/run/workflow", { userId = uid, data = {} }, 400, "workflowId or workflowName is required" },
        { "/run/event", { event = "Nope", userId = uid, data = {} }, 404, "Event not found" },
        { "/run/event", { event = "Order Created", userId = uid, data = { 1, 2 } }, 400, "data must be an object" },
        { "/run/event", { event = "Order Created", userId = uid }, 400, "data is required" },
        { "/run/event", { userId = uid, data = {} }, 400, "event is required" },
        { "/run/event", { event = "Order Created", userId = "ghost", data = {} }, 404, "User not found" },
      }
      for _, case in ipairs(cases) do
        res = post(case[1], case[2])
        assert.equal(case[3], res.status, case[4])
        assert.matches(case[4], res.json.message, 1, true)
      end
      -- the embedded host takes events path-versioned (the SDKs), workflow runs not at all
      local emb = sb:client { retries = 0, api_version = "2024-03" }
      res = assert(emb:request { service = "embedded", version_in_path = true, method = "POST", path = "/run/event",
                                 json = { event = "Ticket Created", userId = uid, data = {} } })
      assert.equal("Event successfully triggered", res.json.message)
      local _, _, code = emb:request { service = "embedded", version_in_path = true, method = "POST",
                                       path = "/run/workflow",
                                       json = { workflowId = HUBSPOT_SYNC, userId = uid, data = {} } }
      assert.equal("HTTP_404", code)
      -- one execution per workflow run: the event fans out to both of its workflows
      assert.equal(5, logs({ limit = 100 }).pagination.totalItems)
    end)

    it("lists a user's integrations with the workflow ids the runs take", function()
      local data = assert(c:request { path = "/integrations", query = { userId = "kai" } }).json.data
      local ids = {}
      for _, g in ipairs(data) do
        for _, w in ipairs(g.workflows) do ids[w.workflowId] = w.active and w.installed end
      end
      assert.same({ [SLACK_ORDERS] = true, [NOTION_ORDERS] = true, ["66a200000000000000000003"] = true,
                    [HUBSPOT_SYNC] = true }, ids)
      local _, _, code = c:request { path = "/integrations" }
      assert.equal("HTTP_400", code)
    end)
  end)

  describe("logs", function()
    before_each(function()
      assert(c:request { method = "PUT", path = "/users/" .. uid, json = { fullName = "Kai L" } })
      local other = sb:create_user { username = "lee" }
      for i = 1, 3 do
        post("/run/event", { event = "Order Created", userId = uid,
                             data = { orderId = tostring(i), customerEmail = "x@y.z" } })
      end
      post("/run/event", { event = "Order Created", userId = other, data = {} }) -- fails: no orderId
      post("/run/workflow", { workflowId = HUBSPOT_SYNC, userId = uid, data = { email = "a@b.c", fullName = "A" } })
    end)

    it("pages newest first in the reference's shape, and sorts", function()
      local page1 = logs({ limit = 4 })
      assert.same({ totalItems = 9, totalPages = 3, currentPage = 1, pageSize = 4 }, page1.pagination)
      assert.equal(4, #page1.notifications)
      assert.is_string(page1.lastFetched)
      assert.equal(HUBSPOT_SYNC, page1.notifications[1].forgeWorkflowId)
      local page3 = logs({ skip = 8, limit = 4 })
      assert.same({ 1, 3 }, { #page3.notifications, page3.pagination.currentPage })
      local seen, all = {}, logs({ limit = 100, sortOrder = "asc" }).notifications
      for i, e in ipairs(all) do
        assert.is_nil(seen[e._id])
        seen[e._id] = true
        if i > 1 then assert.is_true(e.createdAt >= all[i - 1].createdAt) end
      end
      assert.equal(9, #all)
      assert.equal(SLACK_ORDERS, all[1].forgeWorkflowId)
      assert.same({ email = "kai", fullName = "Kai L" }, all[1].user)
      for _, bad in ipairs { { sortBy = "nope" }, { sortOrder = "up" }, { limit = "-1" }, { skip = "x" } } do
        assert.equal("HTTP_400", (select(3, c:request { path = "/logs", query = bad })))
      end
    end)

    it("filters by workflow, user and the documented filter objects", function()
      local function filtered(list)
        return logs({ limit = 100, filters = cjson.encode(list) }).pagination.totalItems
      end
      local function f(column, op, value, cond)
        return { columns = { value = column }, operators = { value = op }, userinput = { value = value },
                 condition = { value = cond or "and" } }
      end
      assert.equal(4, logs({ workflowId = NOTION_ORDERS }).pagination.totalItems)
      assert.equal(7, logs({ associatedUserId = uid }).pagination.totalItems)
      assert.equal(7, logs({ associatedUserId = "kai" }).pagination.totalItems)
      assert.equal(3, logs({ workflowId = SLACK_ORDERS, associatedUserId = uid }).pagination.totalItems)
      assert.equal(2, filtered { f("message", "equals", "executionError") })
      assert.equal(7, filtered { f("message", "notequals", "executionError") })
      assert.equal(2, filtered { f("message", "contains", "Error"), f("forgeWorkflow.name", "contains", "orders") })
      assert.equal(3, filtered { f("forgeWorkflowId", "equals", HUBSPOT_SYNC),
                                 f("message", "equals", "executionError", "or") })
      assert.equal(9, filtered { f("workflowVersion", "greaterthan", "0") })
      local first = logs({ limit = 1, sortOrder = "asc" }).notifications[1]
      assert.equal(9, filtered { f("createdAt", "greaterthan", first.createdAt) }
                      + filtered { f("createdAt", "equals", first.createdAt) })
      assert.equal(0, filtered { f("createdAt", "lessthan", first.createdAt) })
      local _, _, code, res = c:request { path = "/logs", query = { filters = '[{"columns":{"value":"message"}}]' } }
      assert.equal("HTTP_400", code)
      assert.matches("operators", res.json.message)
    end)

    it("logs_shape varies the undocumented-in-part answer: data, or a bare array", function()
      sb:set { logs_shape = "data" }
      assert.equal(2, #logs({ limit = 2 }).data)
      sb:set { logs_shape = "array" }
      assert.equal(2, #logs({ limit = 2 }))
    end)
  end)

  describe("files", function()
    -- PUT to a presigned URL the way a storage client does: no Alloy header unless given.
    local function put(url, body, headers)
      local out = {}
      local h = { ["content-length"] = tostring(#body) }
      for k, v in pairs(headers) do h[k] = v end
      local _, status = http.request { url = url, method = "PUT", headers = h, source = ltn12.source.string(body),
                                        sink = ltn12.sink.table(out) }
      return status, table.concat(out)
    end

    local function request_upload(md5, opts)
      return post("/connectors/files/upload/request", { filename = "notes.txt", mimeType = "text/plain", md5 = md5 },
                  opts).json.presignedUrl
    end

    it("presigns, takes the PUT with the right Content-MD5, lists the user's files, deduplicates", function()
      local as_user = { headers = { ["x-alloy-userid"] = uid } }
      local up = request_upload(BODY_MD5_HEX, as_user)
      assert.same({ BODY_MD5, uid .. "_notes.txt", "new" }, { up.md5, up.s3Key, up.type })
      assert.equal(1, up.presignedUrl:find(sb.s3_url .. "/alloy-user-files/" .. uid .. "_notes.txt?", 1, true))
      local status, body = put(up.presignedUrl, BODY, { ["content-type"] = "text/plain", ["content-md5"] = up.md5 })
      assert.equal(200, status, body)
      local files = assert(c:request { path = "/connectors/files/list", headers = as_user.headers }).json.files
      assert.same({ s3Key = uid .. "_notes.txt", filename = "notes.txt", size = #BODY }, { s3Key = files[1].s3Key,
                    filename = files[1].filename, size = files[1].size })
      -- the same bytes again: existing; other bytes under the same name: new
      assert.equal("existing", request_upload(BODY_MD5, as_user).type)
      assert.equal("new", request_upload(OTHER_MD5, as_user).type)
      -- files belong to the acting user: the API key's own user has none
      assert.same({}, assert(c:request { path = "/connectors/files/list" }).json.files)
      assert.matches("^651eb6e11d156e0d7a42c59d_notes.txt$", request_upload(BODY_MD5).s3Key)
      assert.equal(400, post("/connectors/files/upload/request", { filename = "a", mimeType = "text/plain",
                                                                   md5 = "abc" }).status)
      assert.equal("HTTP_404", select(2, post("/connectors/files/upload/request", {}, { service = "embedded" })))
    end)

    it("the storage host refuses Alloy headers, a wrong or missing MD5, a changed type, no signature", function()
      local up = request_upload(BODY_MD5)
      local ok = { ["content-type"] = "text/plain", ["content-md5"] = BODY_MD5 }
      local function with(k, v)
        local h = {}
        for name, value in pairs(ok) do h[name] = value end
        h[k] = v
        return h
      end
      local cases = {
        { with("authorization", "Bearer " .. sb.api_key), BODY, 400, "InvalidArgument" },
        { with("x-api-version", "2025-09"), BODY, 400, "x-api-version" },
        { with("x-alloy-userid", uid), BODY, 400, "x-alloy-userid" },
        { with("content-md5", nil), BODY, 403, "SignatureDoesNotMatch" },
        { with("content-md5", OTHER_MD5), "other bytes\n", 403, "SignatureDoesNotMatch" },
        { with("content-md5", BODY_MD5_HEX), BODY, 400, "InvalidDigest" },
        { with("content-type", "application/pdf"), BODY, 403, "SignatureDoesNotMatch" },
        { ok, "changed while read\n", 400, "BadDigest" },
      }
      for _, case in ipairs(cases) do
        local status, body = put(up.presignedUrl, case[2], case[1])
        assert.equal(case[3], status, body)
        assert.matches(case[4], body, 1, true)
      end
      local status, body = put((up.presignedUrl:gsub("Signature=%x+", "Signature=00")), BODY, ok)
      assert.same({ 403, true }, { status, body:find("AccessDenied", 1, true) ~= nil })
      -- the alloy client sends its key and version header: the storage host refuses it
      local _, _, code = c:request { url = up.presignedUrl, method = "PUT", body = BODY,
                                     headers = { ["content-type"] = "text/plain", ["content-md5"] = BODY_MD5 } }
      assert.equal("HTTP_400", code)
      assert.same({}, sb:state().objects)
    end)
  end)
end)
