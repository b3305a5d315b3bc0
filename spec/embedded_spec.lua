-- Alloy Embedded from the shell and from Lua: the custom events (alloy events), triggering one
-- for a user (alloy trigger, --each), a user's workflows (alloy workflows) and running one
-- (alloy workflow run), against the sandbox over real HTTP; bad input is refused before
-- anything is sent.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"

local ORDER = { orderId = "1001", customerEmail = "ada@example.com" }
local HUBSPOT = "66a200000000000000000004" -- the sandbox's webhook-triggered workflow

describe("embedded runs", function()
  local sb, uid, dir
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)
  before_each(function() dir = run.tmpdir() end)
  after_each(function() run.rmdir(dir) end)

  local function alloy(args, o)
    o = o or {}
    return run.script("alloy_main", args, { env = run.env(sb, uid, o.extra), cwd = dir, stdin = o.stdin })
  end

  -- The requests the API listener saw to path (a pattern), bodies decoded.
  local function sent(path)
    local out = {}
    for _, r in ipairs(sb:requests()) do
      if r.path:match(path) then out[#out + 1] = r.body ~= "" and cjson.decode(r.body) or {} end
    end
    return out
  end

  local function executions() return sb:state().executions end

  it("events: the custom events with their data's fields; --json as served", function()
    local r = alloy { "events" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("Order Created\tcustomerEmail, orderId\tTriggers when an order is created in your app\n"
      .. "Ticket Created\tcustomerEmail, ticketName\tTriggers when a ticket is opened in your app\n", r.stdout)
    assert.matches("^2 custom events\n", r.stderr)
    r = alloy { "events", "--json" }
    local doc = cjson.decode(r.stdout)
    assert.equal(2, doc.count)
    assert.equal("0001", doc.events[1].body.orderId)
  end)

  it("trigger: the API's answer on stdout, one run per listening workflow, the request as documented", function()
    local r = alloy { "trigger", "Order Created", "--data", cjson.encode(ORDER) }
    assert.equal(0, r.code, r.stderr)
    assert.equal('{"message":"Event successfully triggered"}\n', r.stdout)
    assert.matches('Triggered "Order Created" for user ' .. uid .. ". Its runs: ", r.stderr, 1, true)
    local body = sent("^/run/event$")
    assert.equal(1, #body)
    assert.same({ event = "Order Created", userId = uid, data = ORDER }, body[1])
    assert.equal(2, executions()) -- Slack and Notion listen to it

    -- by username, data from a file and from stdin; none is {}
    run.write(dir .. "/order.json", cjson.encode(ORDER))
    r = alloy({ "trigger", "Order Created", "--data", "@order.json", "-u", "ada" })
    assert.equal(0, r.code, r.stderr)
    r = alloy({ "trigger", "Ticket Created" }, { stdin = '{"ticketName":"x","customerEmail":"y"}' })
    assert.equal(0, r.code, r.stderr)
    r = alloy { "trigger", "Ticket Created" }
    assert.equal(0, r.code, r.stderr)
    body = sent("^/run/event$")
    assert.equal("ada", body[2].userId)
    assert.same(ORDER, body[2].data)
    assert.same({ ticketName = "x", customerEmail = "y" }, body[3].data)
    assert.same({}, body[4].data)
    assert.equal(6, executions()) -- one workflow listens to Ticket Created
  end)

  it("bad input is exit 2 with one line, and nothing is sent", function()
    run.write(dir .. "/list.json", "[1, 2]")
    local cases = {
      { { "trigger", "" }, 'error: "" is not an event name' },
      { { "trigger", "Order\nCreated" }, "is not an event name" },
      { { "trigger", "Order Created", "--data", "[1]" }, "error: the data (--data) is not a JSON object: it is an array"
      },
      { { "trigger", "Order Created", "--data", "{nope" }, "error: the data (--data) is not a JSON object: " },
      { { "trigger", "Order Created", "--data", "@list.json" }, "is not a JSON object: it is an array" },
      { { "trigger", "Order Created", "--data", "@." }, "error: cannot read the data: . is a directory, not a file" },
      { { "trigger", "Order Created", "--data", "{}", "--each", "x" }, "--each and --data do not go together" },
      { { "trigger", "Order Created", "--concurrency", "2" }, "--concurrency goes with --each" },
      { { "workflow", "run", "x", "--id", HUBSPOT }, "error: the workflow is given twice: give it once, by id or by"
      },
      { { "workflow", "run", "--id", HUBSPOT, "--name", "x" }, "the workflow is given twice" },
      { { "workflow", "run", "--id", "not-an-id" }, '"not-an-id" is not a workflow id' },
      { { "workflow", "run" }, "error: no workflow given" },
      { { "workflow", "stop", HUBSPOT }, 'error: unknown action "stop"' },
      { { "workflow", "run", HUBSPOT, "--data", "42" }, "is not a JSON object: it is a number" },
    }
    sb:clear_requests()
    for _, c in ipairs(cases) do
      local r = alloy(c[1])
      assert.equal(2, r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      assert.equal("", r.stdout)
      assert.matches(c[2], r.stderr, 1, true)
      assert.equal(2, #run.lines(r.stderr), r.stderr) -- the error and its hint
    end
    assert.same({}, sb:requests())
  end)

  it("API refusals: an unknown event or user is exit 1 with a hint that names what to check", function()
    local r = alloy { "trigger", "Order Shipped" }
    assert.equal(1, r.code)
    assert.matches("error: HTTP_404: Event not found (POST /run/event)\nhint: the user or the event was not found: "
      .. "check ALLOY_USER_ID / --user (" .. uid .. ") and the event's name; the custom events: ", r.stderr, 1, true)
    r = alloy { "trigger", "Order Created", "-u", "nobody" }
    assert.equal(1, r.code)
    assert.matches("HTTP_404: User not found", r.stderr, 1, true)
    r = alloy { "workflow", "run", "Post new orders to Slack" }
    assert.equal(1, r.code)
    assert.matches("hint: only a workflow with a webhook trigger runs this way", r.stderr, 1, true)
    assert.equal(0, executions())
  end)

  it("trigger --each: one line out per line in, in order; failures accounted for, exit 1", function()
    local lines = {}
    for i = 1, 12 do lines[i] = cjson.encode { orderId = ("o-%02d"):format(i), customerEmail = "x@example.com" } end
    lines[3] = "[1]"                -- not an object: not sent
    lines[6] = ""                   -- blank: skipped and counted
    lines[8] = "{oops"              -- not JSON: not sent
    run.write(dir .. "/orders.jsonl", table.concat(lines, "\n") .. "\n")
    sb:fault { path = "^/run/event$", match = '"o-05"', status = 500 }  -- a trigger that may have run: not retried
    sb:fault { path = "^/run/event$", match = '"o-10"', status = 429, headers = { ["Retry-After"] = "0" } } -- retried
    sb:clear_requests()
    local r = alloy({ "trigger", "Order Created", "--each", "orders.jsonl", "--concurrency", "3" },
      { extra = { ALLOY_RETRIES = "2" } })
    assert.equal(1, r.code, r.stderr)
    local out = run.lines(r.stdout)
    assert.equal(11, #out)
    local failed = { [3] = "INVALID_JSON", [5] = "HTTP_500", [8] = "INVALID_JSON" }
    for i, line in ipairs(out) do
      local doc = cjson.decode(line)
      assert.equal(i < 6 and i or i + 1, doc.line) -- in order, the blank line left out
      if failed[doc.line] then
        assert.is_false(doc.ok, line)
        assert.equal(failed[doc.line], doc.error.code)
      else
        assert.is_true(doc.ok, line)
        assert.equal("Event successfully triggered", doc.result.message)
      end
    end
    assert.matches("\n11 lines: 8 succeeded, 3 failed, 1 blank skipped\n", "\n" .. r.stderr, 1, true)
    assert.matches("error: 3 of 11 lines failed\n", r.stderr, 1, true)
    -- what the API saw: each sendable line once (line 5 failed once and was not sent again), line 10 twice
    local seen = {}
    for _, b in ipairs(sent("^/run/event$")) do
      assert.equal(uid, b.userId)
      seen[b.data.orderId] = (seen[b.data.orderId] or 0) + 1
    end
    for i = 1, 12 do
      local want = i == 10 and 2 or 1
      if i == 3 or i == 6 or i == 8 then want = nil end
      assert.equal(want, seen[("o-%02d"):format(i)], "line " .. i)
    end
    assert.same({}, sb:faults())
  end)

  it("workflows: the user's workflows from the integrations listing, one row each", function()
    local r = alloy { "workflows" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("66a200000000000000000001\tPost new orders to Slack\tSlack alerts\tyes\n"
      .. "66a200000000000000000003\tPost new tickets to Slack\tSlack alerts\tyes\n"
      .. "66a200000000000000000002\tLog orders in Notion\tNotion order log\tyes\n"
      .. "66a200000000000000000004\tSync a contact to HubSpot\tHubSpot contact sync\tyes\n", r.stdout)
    assert.matches("4 workflows for user " .. uid, r.stderr, 1, true)
    local reqs = sb:requests()
    assert.equal("/integrations", reqs[#reqs].path)
    assert.equal("userId=" .. uid, reqs[#reqs].query)
    r = alloy { "workflows", "--json", "-u", "ada" }
    local doc = cjson.decode(r.stdout)
    assert.equal(4, doc.count)
    assert.equal("66a100000000000000000003", doc.workflows[4].integrationId)
  end)

  it("workflow run: by name or by id; the request names only the one given", function()
    local contact = { email = "ada@example.com", fullName = "Ada Lovelace" }
    local r = alloy { "workflow", "run", "Sync a contact to HubSpot", "--data", cjson.encode(contact) }
    assert.equal(0, r.code, r.stderr)
    assert.equal('{"message":"success"}\n', r.stdout)
    r = alloy { "workflow", "run", HUBSPOT, "--data", cjson.encode(contact) }
    assert.equal(0, r.code, r.stderr)
    assert.matches("logs --workflow " .. HUBSPOT, r.stderr, 1, true)
    r = alloy { "workflow", "run", "--name", "Sync a contact to HubSpot" } -- no data: {}, a failed run
    assert.equal(0, r.code, r.stderr)
    local body = sent("^/run/workflow$")
    assert.same({ workflowName = "Sync a contact to HubSpot", userId = uid, data = contact }, body[1])
    assert.same({ workflowId = HUBSPOT, userId = uid, data = contact }, body[2])
    assert.same({ workflowName = "Sync a contact to HubSpot", userId = uid, data = {} }, body[3])
    local ex = executions()
    assert.equal(3, ex)
  end)

  describe("the Lua API", function()
    it("named operations and alloy.embedded: the documented bodies and answers", function()
      local embedded = require "alloy.embedded"
      local c = sb:client()
      local answer, res = c:run_event({ event = "Order Created", userId = uid, data = ORDER })
      assert.same({ message = "Event successfully triggered" }, answer)
      assert.equal(200, res.status)
      local events = assert(c:list_events())
      assert.equal("Order Created", events[1].name)
      local integrations = assert(c:list_integrations({ query = { userId = uid } }))
      assert.equal(3, #integrations)
      assert.same({ message = "success" }, (c:run_workflow({ workflowId = HUBSPOT, userId = uid,
                                                             data = { email = "e", fullName = "f" } })))

      local list = assert(embedded.workflows(c, "ada"))
      assert.equal(4, #list)
      assert.same({ "Sync a contact to HubSpot", "HubSpot contact sync", true }, { list[4].name, list[4].integration,
                                                                                   list[4].active })
      assert.equal(2, #assert(embedded.events(c)))
      assert.same({ message = "Event successfully triggered" }, (embedded.trigger(c, "Ticket Created", uid, {})))
      local none, err = embedded.trigger(c, "Ticket Created", uid, { 1, 2 })
      assert.is_nil(none)
      assert.equal(2, err.status)
      none, err = embedded.run_workflow(c, { id = HUBSPOT, name = "x" }, uid, {})
      assert.is_nil(none)
      assert.equal(2, err.status)
      none, err = embedded.trigger(c, "Nothing Listens", uid, {})
      assert.is_nil(none)
      assert.same({ "HTTP_404", "run_event", 1 }, { err.code, err.op, err.status })
      assert.matches("the event's name", err.hint, 1, true)
      c:close()
    end)

    it("a trigger is not sent again after a 5xx or a dropped connection: its workflows may have run", function()
      local operations = require("alloy").operations
      assert.same({ COULDNT_CONNECT = "always", HTTP_429 = "with Retry-After" }, operations.run_event.retried)
      assert.same(operations.run_event.retried, operations.run_workflow.retried)
      sb:fault { path = "^/run/event$", status = 503 }
      local c = sb:client { retries = 3 }
      local v, msg, code, res = c:run_event({ event = "Order Created", userId = uid, data = ORDER })
      assert.is_nil(v)
      assert.equal("HTTP_503", code, msg)
      assert.equal(1, res.attempts)
      assert.equal(1, #sent("^/run/event$"))
      c:close()
    end)
  end)
  describe("the documentation", function()
    it("docs/commands.md's commands run as printed", function()
      local env = run.env(sb, uid)
      local out, err, code = readme.run("lua5.4 lua/alloy_main.lua events --json", { env = env })
      assert.equal(0, code, err)
      assert.equal(2, cjson.decode(out).count)
      out, err, code = readme.run('lua5.4 lua/alloy_main.lua trigger "Order Created" --data @order.json',
        { env = env, files = { ["order.json"] = cjson.encode(ORDER) } })
      assert.equal(0, code, err)
      assert.equal('{"message":"Event successfully triggered"}\n', out)
      -- luacheck: push no max line length (the documentation's commands, one literal each)
      out, err, code = readme.run([[printf '%s\n' '{"orderId":"1","customerEmail":"a@example.com"}' '{"orderId":"2"}' | lua5.4 lua/alloy_main.lua trigger "Order Created" --each - --concurrency 2]],
        { env = env })
      assert.equal(0, code, err)
      assert.equal(2, #run.lines(out))
      assert.matches("2 lines: 2 succeeded, 0 failed", err, 1, true)
      out, err, code = readme.run("lua5.4 lua/alloy_main.lua workflows", { env = env })
      assert.equal(0, code, err)
      assert.equal(4, #run.lines(out))
      out, err, code = readme.run([[lua5.4 lua/alloy_main.lua workflow run "Sync a contact to HubSpot" --data '{"email":"ada@example.com","fullName":"Ada Lovelace"}']],
        { env = env })
      -- luacheck: pop
      assert.equal(0, code, err)
      assert.equal('{"message":"success"}\n', out)
      assert.equal(7, executions())
    end)

    -- What changes from run to run: ids and times.
    local function stable(text)
      return (text:gsub("%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x", "<id>")
        :gsub("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ", "<time>"))
    end

    it("docs/embedded.md's walk-through runs as printed, from a new user to the log line, and shows that", function()
      sb:reset() -- a fresh sandbox, as `make sandbox` starts: ada is made by the walk-through
      local seeded = sb:create_user { username = "sandbox-user" }
      local shown = {}
      local section = readme.section("docs/embedded.md", "## From a new user to a log line")
      for block in section:gmatch("\n```text\n(.-)```") do
        for cmd, output in block:gmatch("%$ ([^\n]+)\n([^$]*)") do
          shown[#shown + 1] = { cmd = cmd, output = output }
        end
      end
      local dir2 = readme.checkout()
      run.write(dir2 .. "/.env.sandbox", ("ALLOY_API_KEY=%s\nALLOY_USER_ID=%s\nALLOY_BASE_URL=%s\n"
        .. "ALLOY_EMBEDDED_URL=%s\n"):format(sb.api_key, seeded, sb.url, sb.embedded_url), "600")
      -- luacheck: push no max line length (the documentation's commands, one literal each)
      local cmds = {
        readme.command([[lua5.4 lua/alloy_main.lua users create ada --full-name "Ada Lovelace" --env-file .env.sandbox]]),
        readme.command([[lua5.4 lua/alloy_main.lua events --env-file .env.sandbox]]),
        readme.command([[lua5.4 lua/alloy_main.lua trigger "Order Created" --data '{"orderId":"1001","customerEmail":"ada@example.com"}' -u ada --env-file .env.sandbox]]),
        readme.command([[lua5.4 lua/alloy_main.lua logs --since 5m --env-file .env.sandbox -u ada]]),
        readme.command([[lua5.4 lua/alloy_main.lua trigger "Order Created" --data '{"orderId":"1002"}' -u ada --env-file .env.sandbox]]),
        readme.command([[lua5.4 lua/alloy_main.lua logs --errors --env-file .env.sandbox -u ada]]),
      }
      -- luacheck: pop
      local run_shown = readme.run -- (an alias: each command above is a checked literal of readme.command)
      assert.equal(#cmds, #shown)
      for i, cmd in ipairs(cmds) do
        assert.equal(cmd, shown[i].cmd)
        local out, err, code = run_shown(cmd, { cwd = dir2, tty = true })
        assert.equal(0, code, out .. err)
        assert.equal(stable(shown[i].output), stable(out))
      end
      run.rmdir(dir2)
      -- ada's executions are those two triggers' only, and the log lines name her
      assert.equal(4, sb:state().executions)
    end)

    it("docs/embedded.md's Lua example runs as printed", function()
      local block = assert(readme.section("docs/embedded.md", "## From Lua"):match("\n```lua\n(.-)\n```"))
      local file = dir .. "/example.lua"
      run.write(file, ("arg = { [0] = %q }; package.path = %q .. package.path; require 'alloy.paths'\n")
        :format(run.root .. "/lua/example.lua", run.root .. "/lua/?.lua;") .. block .. "\n")
      local r = run.script(file, {}, { cwd = dir, env = run.env(sb, uid) })
      assert.equal(0, r.code, r.stderr)
      local lines = run.lines(r.stdout)
      assert.equal(3, #lines, r.stdout)
      assert.equal("Event successfully triggered", lines[1])
      assert.matches("^[^\t]+\texecutionSuccess\tPost new orders to Slack\tada\t%x+$", lines[2])
      assert.matches("^[^\t]+\texecutionSuccess\tLog orders in Notion\tada\t%x+$", lines[3])
    end)
  end)
end)
