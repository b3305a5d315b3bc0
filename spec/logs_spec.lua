-- alloy logs and alloy.logs: the executions GET /logs reports, with the documented parameters
-- (workflowId, associatedUserId, skip, limit, sortBy, sortOrder, filters), paged as needed,
-- in each answer shape the sandbox serves; --follow prints each new execution once and stops
-- on Ctrl-C with exit 130. Over real HTTP against the sandbox.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"

local ORDER = { orderId = "1", customerEmail = "ada@example.com" }
local SLACK_ORDERS = "66a200000000000000000001"

describe("logs", function()
  local sb, uid, dir, client
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)
  before_each(function()
    dir = run.tmpdir()
    client = sb:client()
  end)
  after_each(function()
    client:close()
    run.rmdir(dir)
  end)

  local function alloy(args, extra)
    return run.script("alloy_main", args, { env = run.env(sb, uid, extra), cwd = dir })
  end

  -- n triggers of an event for user (2 executions each for Order Created); data may lack a field.
  local function trigger(n, user, data, event)
    for _ = 1, n do
      assert(client:run_event({ event = event or "Order Created", userId = user or uid, data = data or ORDER }))
    end
  end

  -- The query strings of the GET /logs requests, decoded, in order.
  local function log_queries()
    local out = {}
    for _, r in ipairs(sb:requests()) do
      if r.path == "/logs" then
        local q = {}
        for k, v in r.query:gmatch("([^&=]+)=([^&]*)") do
          q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
        end
        out[#out + 1] = q
      end
    end
    return out
  end

  it("lists the user's executions, oldest first, with the documented parameters", function()
    local other = sb:create_user { username = "grace" }
    trigger(1)
    trigger(1, other)
    trigger(1, uid, { orderId = "2" }) -- no customerEmail: both workflows fail
    sb:clear_requests()
    local r = alloy { "logs" }
    assert.equal(0, r.code, r.stderr)
    local rows = run.lines(r.stdout)
    assert.equal(4, #rows)
    local messages = {}
    for i, row in ipairs(rows) do
      local cells = {}
      for c in (row .. "\t"):gmatch("([^\t]*)\t") do cells[#cells + 1] = c end
      assert.equal(5, #cells, row)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", cells[1])
      assert.equal("ada", cells[4])
      assert.matches("^%x+$", cells[5])
      messages[i] = cells[2] .. " " .. cells[3]
    end
    assert.same({ "executionSuccess Post new orders to Slack", "executionSuccess Log orders in Notion",
                  "executionError Post new orders to Slack", "executionError Log orders in Notion" }, messages)
    assert.matches("4 executions for user " .. uid, r.stderr, 1, true)
    assert.same({ { associatedUserId = uid, skip = "0", limit = "20", sortBy = "createdAt", sortOrder = "desc" } },
      log_queries())

    r = alloy { "logs", "--all-users", "--json" }
    assert.equal(0, r.code, r.stderr)
    local doc = cjson.decode(r.stdout)
    assert.equal(6, doc.count)
    assert.equal(cjson.null, doc.userId)
    assert.equal("grace", doc.logs[3].user.email)

    r = alloy { "logs", "--errors", "--workflow", SLACK_ORDERS, "--since", "1h" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #run.lines(r.stdout))
    assert.matches("^[^\t]+\texecutionError\tPost new orders to Slack\t", r.stdout)
    local q = log_queries()[3]
    assert.equal(SLACK_ORDERS, q.workflowId)
    local filters = cjson.decode(q.filters)
    assert.equal(2, #filters)
    assert.same({ columns = { value = "message" }, operators = { value = "equals" },
                  userinput = { value = "executionError" }, condition = { value = "and" } }, filters[1])
    assert.equal("createdAt", filters[2].columns.value)
    assert.equal("greaterthan", filters[2].operators.value)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", filters[2].userinput.value)

    r = alloy { "logs", "--since", "2999-01-01" } -- nothing after that
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.matches("0 executions", r.stderr, 1, true)
  end)

  it("fetches pages as they are needed, in each answer shape", function()
    trigger(6) -- 12 executions
    for _, shape in ipairs({ "notifications", "data", "array" }) do
      sb:set { logs_shape = shape }
      sb:clear_requests()
      local r = alloy { "logs", "--limit", "11", "--page-size", "5" }
      assert.equal(0, r.code, shape .. ": " .. r.stderr)
      assert.equal(11, #run.lines(r.stdout), shape)
      local pages = {}
      for _, q in ipairs(log_queries()) do pages[#pages + 1] = q.skip .. "+" .. q.limit end
      assert.same({ "0+5", "5+5", "10+1" }, pages, shape)
      assert.matches("the newest 11: --limit for more", r.stderr, 1, true)

      sb:clear_requests()
      r = alloy { "logs", "--limit", "100", "--page-size", "5" }
      assert.equal(0, r.code, r.stderr)
      assert.equal(12, #run.lines(r.stdout), shape)
      pages = {}
      for _, q in ipairs(log_queries()) do pages[#pages + 1] = q.skip .. "+" .. q.limit end
      -- the total (notifications' pagination) or a short page (the others) says it was the last
      assert.same({ "0+5", "5+5", "10+5" }, pages, shape)
    end
  end)

  it("bad options are exit 2 before anything is sent", function()
    sb:clear_requests()
    for _, c in ipairs({
      { { "logs", "--since", "yesterday" }, '--since "yesterday": not a time' },
      { { "logs", "--since", "2025-13-01" }, "out of range" },
      { { "logs", "--workflow", "Post new orders to Slack" }, "is not a workflow id (24 hex digits)" },
      { { "logs", "--limit", "0" }, "--limit must be a whole number from 1 to 10000" },
      { { "logs", "--page-size", "1.5" }, "--page-size must be a whole number" },
      { { "logs", "--interval", "1" }, "--interval goes with --follow" },
      { { "logs", "--follow", "--interval", "0" }, "--interval must be a number of seconds" },
      { { "logs", "--all-users", "-u", "ada" }, "--all-users and -u do not go together" },
    }) do
      local r = alloy(c[1])
      assert.equal(2, r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      assert.matches(c[2], r.stderr, 1, true)
    end
    assert.same({}, sb:requests())
  end)

  describe("the follower", function()
    local logs = require "alloy.logs"

    local function ids(list)
      local out = {}
      for i, e in ipairs(list) do out[i] = e._id end
      return out
    end

    it("returns each entry once, oldest first, across pages and polls", function()
      trigger(3)
      local all = {}
      local f = logs.follower(client, assert(logs.query { user = uid }), { limit = 4, page_size = 2 })
      local first = assert(f:poll())
      assert.equal(4, #first) -- the newest 4 of 6
      for _, e in ipairs(first) do all[#all + 1] = e._id end
      assert.same({}, assert(f:poll()))
      trigger(4) -- 8 new ones: four pages of 2 to reach one already seen
      sb:clear_requests()
      local new = assert(f:poll())
      assert.equal(8, #new)
      assert.equal(5, #sb:requests()) -- pages until one holds a known entry
      for _, e in ipairs(new) do all[#all + 1] = e._id end
      trigger(1)
      new = assert(f:poll())
      assert.equal(2, #new)
      for _, e in ipairs(new) do all[#all + 1] = e._id end
      assert.same({}, assert(f:poll()))
      -- nothing twice, and in the order the API recorded them
      local everything = assert(logs.fetch(client, assert(logs.query { user = uid }), 100))
      local want = {}
      for i = #everything, 1, -1 do want[#want + 1] = everything[i]._id end
      local shown = {}
      for i = 3, #want do shown[#shown + 1] = want[i] end -- the 2 oldest were beyond the first limit
      assert.same(shown, all)
      assert.same(ids(new), { want[#want - 1], want[#want] })
    end)

    it("tells entries apart by _id, else the execution id, else their whole content", function()
      assert.equal("_id a", logs.key { _id = "a", data = { executionId = "b" } })
      assert.equal("execution b", logs.key { data = { executionId = "b" } })
      assert.equal(logs.key { message = "x", n = 1 }, logs.key { n = 1, message = "x" })
      assert.are_not.equal(logs.key { message = "x" }, logs.key { message = "y" })
    end)
  end)

  describe("--follow", function()
    -- `alloy logs --follow ...` in a process group of its own, stdout to a file; -> its pid, the
    -- run's handle, the stdout file
    local function follow(args)
      local out = dir .. "/follow.out"
      local argv = { run.quote(run.lua), run.quote(run.root .. "/lua/alloy_main.lua") }
      for _, a in ipairs(args) do argv[#argv + 1] = run.quote(a) end
      local h = run.spawn("alloy_main", args, { env = run.env(sb, uid), cwd = dir,
        shell = "setsid " .. table.concat(argv, " ") .. " > " .. run.quote(out) .. ' & echo "pid $!"; wait $!' })
      local pid = assert(h:line():match("^pid (%d+)$"))
      finally(function() -- a failed assertion must not leave it running (nor the suite waiting on it)
        if run.alive(pid) then os.execute("kill -KILL -" .. pid) end
        h:wait()
      end)
      return pid, h, out
    end

    local function lines_in(file) return run.lines(run.read(file)) end

    it("prints new executions once as they arrive; Ctrl-C ends it with 130, nothing half-printed", function()
      trigger(1)
      local pid, h, out = follow { "logs", "--follow", "--interval", "0.2", "--page-size", "2", "--limit", "1" }
      assert.truthy(run.wait_for(function() return #lines_in(out) == 1 end, 20), run.read(out))
      trigger(3) -- 6 new executions: three pages a poll at most
      assert.truthy(run.wait_for(function() return #lines_in(out) == 7 end, 20), run.read(out))
      trigger(1, uid, { orderId = "x" })
      assert.truthy(run.wait_for(function() return #lines_in(out) == 9 end, 20), run.read(out))
      os.execute("kill -INT -" .. pid)
      local exited = run.wait_for(function() return not run.alive(pid) end, 10) ~= nil
      if not exited then os.execute("kill -KILL -" .. pid) end
      local r = h:wait()
      assert.is_true(exited, "still running 10 s after Ctrl-C")
      assert.equal(130, r.code, r.stderr)
      assert.matches("\ninterrupted\n$", r.stderr)
      local text = run.read(out)
      assert.matches("\n$", text)
      local rows = run.lines(text)
      assert.equal(9, #rows)
      local seen = {}
      for _, row in ipairs(rows) do
        local execution = row:match("\t(%x+)$")
        assert.truthy(execution, row)
        assert.is_nil(seen[execution], "printed twice: " .. row)
        seen[execution] = true
      end
      assert.matches("\texecutionError\t", rows[8], 1, true)
      assert.matches("\texecutionError\t", rows[9], 1, true)
      assert.equal(10, sb:state().executions) -- the one not shown was older than --limit 1
    end)

    it("--json: one JSON object per line", function()
      trigger(1)
      local pid, h, out = follow { "logs", "--follow", "--json", "--interval", "0.2" }
      assert.truthy(run.wait_for(function() return #lines_in(out) == 2 end, 20), run.read(out))
      trigger(1, uid, nil, "Ticket Created")
      assert.truthy(run.wait_for(function() return #lines_in(out) == 3 end, 20), run.read(out))
      os.execute("kill -INT -" .. pid)
      assert.truthy(run.wait_for(function() return not run.alive(pid) end, 10))
      local r = h:wait()
      assert.equal(130, r.code, r.stderr)
      local rows = lines_in(out)
      assert.equal("Post new tickets to Slack", cjson.decode(rows[3]).forgeWorkflow.name)
    end)
  end)
  it("docs/commands.md's commands run as printed; --follow stops on Ctrl-C", function()
    trigger(1)
    trigger(1, uid, { orderId = "2" })
    local out, err, code = readme.run("lua5.4 lua/alloy_main.lua logs --errors --since 1h", { env = run.env(sb, uid) })
    assert.equal(0, code, err)
    assert.equal(2, #run.lines(out))
    assert.is_nil(out:find("executionSuccess", 1, true))
    local h = readme.background("lua5.4 lua/alloy_main.lua logs --follow --workflow 66a200000000000000000001",
      { env = run.env(sb, uid) })
    finally(function() h:stop() end)
    assert.truthy(run.wait_for(function() return #run.lines(h.stdout()) == 2 end, 20), h.stderr())
    trigger(1)
    assert.truthy(run.wait_for(function() return #run.lines(h.stdout()) == 3 end, 20), h.stderr())
    local r = h:stop()
    local rows = run.lines(r.stdout)
    assert.equal(3, #rows)
    for _, row in ipairs(rows) do assert.matches("\tPost new orders to Slack\t", row, 1, true) end
    assert.matches("\ninterrupted\n$", r.stderr)
  end)
end)
