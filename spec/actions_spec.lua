-- Using a connection: a connector's actions (alloy actions), what one takes (alloy action),
-- executing it with a user's credential (alloy run, --each), and the Lua API's three
-- operations, against the sandbox over real HTTP.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"

local EXECUTE = "^/connectors/[^/]+/actions/[^/]+/execute$"
-- how the alloy command names itself when the specs start it from the checkout
local ALLOY = run.invoked("alloy_main")

describe("actions", function()
  local sb, uid, dir, cred
  Sandbox.per_test_connection("ada", "slack", function(s, u, c, d) sb, uid, cred, dir = s, u, c, d end)

  -- `alloy <args>` as ada, with her slack connection as CONNECTION_ID unless extra says otherwise.
  local function alloy(args, o)
    o = o or {}
    local extra = { CONNECTION_ID = cred }
    for k, v in pairs(o.extra or {}) do extra[k] = v end
    return run.alloy(sb, uid, dir, args, { extra = extra, stdin = o.stdin })
  end

  local function executes()
    local out = {}
    for _, r in ipairs(sb:requests()) do
      if r.method == "POST" and r.path:match(EXECUTE) then out[#out + 1] = r end
    end
    return out
  end

  it("browse, schema, run: the connector's actions, what one takes, its result as JSON", function()
    local r = alloy { "actions", "slack" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("chat\tchat_postMessage\tPOST\tPost a message\n"
      .. "conversations\tconversations_history\tGET\tConversation history\n"
      .. "conversations\tconversations_list\tGET\tList conversations\n"
      .. "users\tusers_info\tGET\tGet user info\n", r.stdout)
    assert.matches("4 actions of slack\nWhat one takes: " .. ALLOY .. " action slack chat_postMessage\n", r.stderr, 1,
      true)

    r = alloy { "actions", "slack", "--search", "MESSAGE" }
    assert.equal("chat\tchat_postMessage\tPOST\tPost a message\n", r.stdout)
    r = alloy { "actions", "slack", "--json" }
    local doc = cjson.decode(r.stdout)
    assert.equal(4, doc.count)
    assert.equal("users_info", doc.actions[4].id)
    assert.equal("Gets information about a user.", doc.actions[4].description)

    r = alloy { "action", "slack", "chat_postMessage" }
    assert.equal(0, r.code, r.stderr)
    local rows = run.lines(r.stdout)
    assert.equal(4, #rows)
    assert.equal("token\theader\tstring\tyes\tAuthentication token (supplied by the credential)", rows[1])
    assert.matches("^channel\tbody\tstring\tyes\t", rows[2])
    assert.matches("^text\tbody\tstring\tyes\t", rows[3])
    assert.matches("^thread_ts\tbody\tstring\tno\t", rows[4])
    assert.matches("chat_postMessage (Post a message): POST /chat.postMessage\n", r.stderr, 1, true)
    assert.matches("Run it: " .. ALLOY .. [[ run slack chat_postMessage --body '{"channel":…,"text":…}']], r.stderr, 1,
      true)
    r = alloy { "action", "slack", "conversations_history" }
    assert.matches("Run it: " .. ALLOY .. " run slack conversations_history --query channel=<channel>\n", r.stderr, 1,
      true)

    r = alloy { "action", "slack", "chat_postMessage", "--json" }
    assert.equal(0, r.code, r.stderr)
    local c = sb:client()
    local _, res = assert(c:get_action("slack", "chat_postMessage"))
    c:close()
    assert.same(cjson.decode(res.body), cjson.decode(r.stdout))

    sb:clear_requests()
    r = alloy { "run", "slack", "chat_postMessage", "--body", '{"channel":"C0123","text":"Hello"}' }
    assert.equal(0, r.code, r.stderr)
    doc = cjson.decode(r.stdout)
    assert.is_true(doc.success)
    assert.same({ channel = "C0123", text = "Hello" }, doc.result.received.requestBody)
    local sent = executes()
    assert.equal(1, #sent)
    assert.equal("/connectors/slack/actions/chat_postMessage/execute", sent[1].path)
    assert.equal(uid, sent[1].headers["x-alloy-userid"])
    local body = cjson.decode(sent[1].body)
    assert.equal(cred, body.credentialId)
    assert.same({ channel = "C0123", text = "Hello" }, body.requestBody)
  end)

  it("query, path and header parameters; the body from @file, - and stdin", function()
    local r = alloy { "run", "slack", "conversations_history", "--query", "channel=C1", "--query", "limit=5",
                      "--header", "X-Trace=abc" }
    assert.equal(0, r.code, r.stderr)
    assert.same({ channel = "C1", limit = "5" }, cjson.decode(r.stdout).result.received.queryParameters)
    assert.same({ ["X-Trace"] = "abc" }, cjson.decode(executes()[1].body).additionalHeaders)

    local notion = sb:create_credential { userId = uid, connector = "notion" }.credentialId
    r = alloy({ "run", "notion", "get_page", "--path", "page_id=p-1" }, { extra = { CONNECTION_ID = notion } })
    assert.equal(0, r.code, r.stderr)
    assert.same({ page_id = "p-1" }, cjson.decode(r.stdout).result.received.pathParams)

    run.write(dir .. "/body.json", '{"channel":"C2","text":"from a file"}')
    r = alloy { "run", "slack", "chat_postMessage", "--body", "@body.json" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("from a file", cjson.decode(r.stdout).result.received.requestBody.text)
    r = alloy({ "run", "slack", "chat_postMessage", "--body", "-" }, { stdin = '{"channel":"C2","text":"dash"}' })
    assert.equal("dash", cjson.decode(r.stdout).result.received.requestBody.text)
    r = alloy({ "run", "slack", "chat_postMessage" }, { stdin = '{"channel":"C2","text":"piped"}\n' })
    assert.equal(0, r.code, r.stderr)
    assert.equal("piped", cjson.decode(r.stdout).result.received.requestBody.text)
  end)

  it("a missing required parameter: exit 2, named, and the sandbox saw no execute", function()
    sb:clear_requests()
    local r = alloy { "run", "slack", "conversations_history" }
    assert.equal(2, r.code)
    assert.equal("", r.stdout)
    assert.matches("error: missing required parameter: query channel (nothing was sent)\n", r.stderr, 1, true)
    assert.matches("hint: pass --query channel=…", r.stderr, 1, true)
    r = alloy { "run", "slack", "chat_postMessage", "--body", '{"channel":"C1"}' }
    assert.equal(2, r.code)
    assert.matches("missing required parameter: body text", r.stderr, 1, true)
    r = alloy { "run", "slack", "chat_postMessage" }
    assert.matches("missing required parameters: body channel, body text", r.stderr, 1, true)
    r = alloy { "run", "notion", "get_page" }
    assert.matches("missing required parameter: path page_id", r.stderr, 1, true)
    assert.same({}, executes())
  end)

  it("bad input is refused before anything is sent (exit 2)", function()
    sb:clear_requests()
    local cases = {
      { { "run", "slack", "chat_postMessage", "--body", "{not json" }, "the body (--body) is not a JSON object: " },
      { { "run", "slack", "chat_postMessage", "--body", '"text"' }, "the body (--body) is not a JSON object" },
      { { "run", "slack", "chat_postMessage", "--body", "42" }, "the body (--body) is not a JSON object" },
      { { "run", "slack", "chat_postMessage", "--body", "@missing.json" }, "cannot read the body" },
      { { "run", "sl/ack", "chat_postMessage" }, '"sl/ack" is not a valid connector id' },
      { { "run", "slack", "chat\27[2J" }, '"chat?[2J" is not a valid action id' },
      { { "run", "slack", ".." }, '".." is not a valid action id' },
      { { "run", "slack", "chat_postMessage", "--credential", "12345" }, '"12345" is not a connection id' },
      { { "run", "slack", "chat_postMessage", "--query", "novalue" }, "--query takes name=value" },
      { { "run", "slack", "chat_postMessage", "--each", "x", "--body", "{}" }, "--each and --body" },
      { { "run", "slack", "chat_postMessage", "--each", "-", "--concurrency", "many" }, "--concurrency: " },
      { { "run", "slack", "chat_postMessage", "--each", "-", "--concurrency", "0" }, "--concurrency: " },
      { { "run", "slack", "chat_postMessage", "--concurrency", "2" }, "--concurrency goes with --each" },
      { { "run", "slack", "chat_postMessage", "--each", "no-such-file" }, "cannot read --each" },
      -- odd files: no text in a directory, no end to /dev/zero
      { { "run", "slack", "chat_postMessage", "--body", "@." }, "cannot read the body: . is a directory, not a file" },
      { { "run", "slack", "chat_postMessage", "--each", "/" }, "cannot read --each: / is a directory, not a file" },
      { { "run", "slack", "chat_postMessage", "--body", "@/dev/zero" }, "cannot read the body: more than 64 MiB" },
      { { "run", "slack", "chat_postMessage", "--each", "/dev/zero" },
        "cannot read --each: /dev/zero is a device, not a file" },
      { { "run", "slack" }, "give a connector and an action" },
      { { "action", "slack" }, "give a connector and an action" },
      { { "actions" }, "no connector given" },
    }
    for _, case in ipairs(cases) do
      local r = alloy(case[1])
      assert.equal(2, r.code, table.concat(case[1], " ") .. ": " .. r.stderr)
      assert.matches(case[2], r.stderr, 1, true)
      assert.is_nil(r.stderr:find("\27", 1, true))
    end
    local r = alloy({ "run", "slack", "chat_postMessage" }, { extra = { CONNECTION_ID = false } })
    assert.equal(2, r.code)
    assert.matches("error: no connection (credential) id: --credential was not given and CONNECTION_ID is not set",
      r.stderr, 1, true)
    assert.matches("hint: pass --credential <id>", r.stderr, 1, true)
    assert.same({}, executes())
  end)

  it("an unknown connector or action: exit 2 with the closest ids", function()
    local r = alloy { "actions", "slakc" }
    assert.equal(2, r.code)
    assert.equal('error: unknown connector "slakc"\nhint: did you mean slack?\n', r.stderr)
    r = alloy { "action", "slack", "chat_postMesage" }
    assert.equal(2, r.code)
    assert.equal('error: connector slack has no action "chat_postMesage"\nhint: did you mean chat_postMessage?\n',
      r.stderr)
    r = alloy { "run", "slakc", "chat_postMessage" }
    assert.equal(2, r.code)
    assert.matches("did you mean slack?", r.stderr, 1, true)
    -- when the catalogue cannot be read, the 404 is reported as it is, not as an unknown id
    sb:fault { path = "^/connectors$", status = 500, times = 4 }
    r = alloy { "actions", "slakc" }
    assert.equal(1, r.code)
    assert.matches("^error: HTTP_404", r.stderr)
    sb:clear_faults()
  end)

  it("another connector's credential: exit 1, the API's message and a hint", function()
    local r = alloy { "run", "notion", "search", "--body", '{"query":"x"}' }
    assert.equal(1, r.code)
    assert.equal("", r.stdout)
    assert.matches("error: HTTP_400: Credential " .. cred .. " is a slack credential, not notion", r.stderr, 1, true)
    assert.matches("hint: the API refused the execute (its message says why): check the connection, CONNECTION_ID"
      .. " / --credential (" .. cred .. ") (the user's notion connections: " .. ALLOY .. " connections notion), and the"
      .. " input (what the action takes: " .. ALLOY .. " action notion search)\n", r.stderr, 1, true)
  end)

  it("another user's credential, or one that does not exist: exit 1, the API's message and a hint", function()
    local bob = sb:create_user { username = "bob" }
    local bobs = sb:create_credential { userId = bob, connector = "slack" }.credentialId
    local r = alloy { "run", "slack", "users_info", "--query", "user=U1", "--credential", bobs }
    assert.equal(1, r.code)
    assert.matches("error: HTTP_403: Credential " .. bobs .. " does not belong to user " .. uid, r.stderr, 1, true)
    assert.matches("hint: the connection must be one of the user's: check CONNECTION_ID / --credential (" .. bobs
      .. ") and ALLOY_USER_ID / --user (" .. uid .. ") (the user's slack connections: " .. ALLOY
      .. " connections slack)\n", r.stderr, 1, true)
    r = alloy { "run", "slack", "users_info", "--query", "user=U1", "--credential", "0123456789abcdef01234567" }
    assert.equal(1, r.code)
    assert.matches("error: HTTP_404: Credential not found", r.stderr, 1, true)
    -- bob runs it with his own
    r = alloy({ "run", "slack", "users_info", "--query", "user=U1", "--user", "bob" },
      { extra = { CONNECTION_ID = bobs } })
    assert.equal(0, r.code, r.stderr)
  end)

  it("the result is printed as JSON: control characters from the app stay escaped", function()
    local text = "red \27[31m bell \7 csi \194\155 del \127"
    local r = alloy { "run", "slack", "chat_postMessage", "--body", cjson.encode { channel = "C", text = text } }
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("[%z\1-\9\11-\31\127]"), r.stdout)
    assert.is_nil(r.stdout:find("\194[\128-\159]"), r.stdout)
    assert.matches("\\u001b[31m", r.stdout, 1, true)
    assert.matches("\\u009b", r.stdout, 1, true)
    assert.equal(text, cjson.decode(r.stdout).result.received.requestBody.text)
  end)

  it("the result is printed as the connector sent it: big integers exact, one line, controls escaped", function()
    local sent = '{\n  "id": 1234567890123456789,\n  "big": 1e400,\n  "t": "a\27b\194\155c"\n}\n'
    local shown = '{   "id": 1234567890123456789,   "big": 1e400,   "t": "a\\u001bb\\u009bc" }'
    sb:fault { path = EXECUTE, status = 200, body = sent, times = 3 }
    local r = alloy { "run", "slack", "chat_postMessage", "--body", '{"channel":"C","text":"x"}' }
    assert.equal(0, r.code, r.stderr)
    assert.equal(shown .. "\n", r.stdout)
    r = alloy({ "run", "slack", "chat_postMessage", "--each", "-" },
      { stdin = '{"channel":"C","text":"a"}\n{"channel":"C","text":"b"}\n' })
    assert.equal(0, r.code, r.stderr)
    assert.equal('{"line":1,"ok":true,"result":' .. shown .. '}\n{"line":2,"ok":true,"result":' .. shown .. '}\n',
      r.stdout)
    -- the schema as served, too
    sb:fault { path = "^/connectors/slack/actions/chat_postMessage$", status = 200,
               body = '{"action": {"id": "chat_postMessage", "limit": 9007199254740993}}' }
    r = alloy { "action", "slack", "chat_postMessage", "--json" }
    assert.equal(0, r.code, r.stderr)
    assert.equal('{"action": {"id": "chat_postMessage", "limit": 9007199254740993}}\n', r.stdout)
  end)

  it("parameter names from the server never reach a suggested command unless they are plain words", function()
    local schema = cjson.encode { action = { id = "chat_postMessage", httpMethod = "post",
      parameters = { { name = "$(touch pwned)", ["in"] = "query", required = true },
                     { name = "channel", ["in"] = "query", required = true } },
      requestBody = { required = { "a'b;c", "text" }, properties = { text = { type = "string" } } } } }
    sb:fault { path = "^/connectors/slack/actions/chat_postMessage$", status = 200, body = schema, times = 2 }
    local r = alloy { "action", "slack", "chat_postMessage" }
    assert.equal(0, r.code, r.stderr)
    local run_it = r.stderr:match("Run it: ([^\n]*)")
    assert.equal(ALLOY .. " run slack chat_postMessage --query channel=<channel> --body '{\"text\":…}' …", run_it)
    r = alloy { "run", "slack", "chat_postMessage", "--body", "{}" }
    assert.equal(2, r.code, r.stderr)
    local hint = r.stderr:match("hint: ([^\n]*)")
    assert.matches("pass the query parameter named above, --query channel=…, the body parameter named above, "
      .. 'a body with "text"', hint, 1, true)
    assert.is_nil(hint:find("$(", 1, true))
    assert.same({}, executes())
  end)

  it("a schema that is not an object: exit 1, nothing executed", function()
    sb:fault { path = "^/connectors/slack/actions/chat_postMessage$", status = 200, body = '"nope"', times = 2 }
    for _, args in ipairs { { "action", "slack", "chat_postMessage" }, { "run", "slack", "chat_postMessage" } } do
      local r = alloy(args, { stdin = '{"channel":"C","text":"x"}' })
      assert.equal(1, r.code, r.stderr)
      assert.matches("error: the API answered with no schema for action chat_postMessage\n", r.stderr, 1, true)
      assert.equal("", r.stdout)
    end
    assert.same({}, executes())
  end)

  it("--verbose shows the exchange with the key redacted", function()
    local r = alloy { "run", "slack", "conversations_history", "--query", "channel=C1", "-v" }
    assert.equal(0, r.code, r.stderr)
    assert.matches("> POST /connectors/slack/actions/conversations_history/execute", r.stderr, 1, true)
    assert.matches("Authorization: [REDACTED]", r.stderr, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(sb.api_key, 1, true))
  end)

  it("--each over 50 lines with faults on some: every line accounted for, in line order, exit 1", function()
    local input = {}
    for n = 1, 50 do input[n] = cjson.encode { channel = "C", text = ("line-%02d"):format(n) } end
    input[20] = ""                     -- blank: skipped, counted
    input[30] = '{"channel": "C", '    -- not JSON: a failed line, not sent
    input[40] = '{"channel":"C"}'      -- no text: a failed line, not sent
    local function fault(n, f)
      f.path, f.match = EXECUTE, ("line-%02d"):format(n)
      sb:fault(f)
    end
    fault(5, { status = 500 })
    fault(10, { status = 429 })                                   -- no Retry-After: not retried
    fault(15, { drop = true })                                    -- dropped: it may have acted, not retried
    fault(25, { status = 429, headers = { ["Retry-After"] = "0" } }) -- retried, then succeeds
    fault(35, { status = 400, body = { message = "channel_not_found" } })
    run.write(dir .. "/lines.jsonl", table.concat(input, "\n") .. "\n")
    sb:clear_requests()

    local r = alloy({ "run", "slack", "chat_postMessage", "--each", "lines.jsonl", "--concurrency", "8" },
      { extra = { ALLOY_RETRIES = "2" } })
    assert.equal(1, r.code, r.stderr)
    local out = run.lines(r.stdout)
    assert.equal(49, #out)
    local failed = { [5] = "HTTP_500", [10] = "HTTP_429", [15] = "GOT_NOTHING", [30] = "INVALID_JSON",
                     [35] = "HTTP_400", [40] = "MISSING_PARAMETER" }
    local prev = 0
    for _, line in ipairs(out) do
      local doc = cjson.decode(line)
      assert.is_true(doc.line > prev, "out of order: " .. r.stdout)
      prev = doc.line
      assert.are_not.equal(20, doc.line)
      if failed[doc.line] then
        assert.is_false(doc.ok, line)
        assert.equal(failed[doc.line], doc.error.code, line)
        assert.is_string(doc.error.message)
      else
        assert.is_true(doc.ok, line)
        assert.equal(("line-%02d"):format(doc.line), doc.result.result.received.requestBody.text)
      end
    end
    assert.matches('"status":500', out[5], 1, true)
    assert.matches("channel_not_found", out[34], 1, true)
    assert.matches("\n49 lines: 43 succeeded, 6 failed, 1 blank skipped\n", "\n" .. r.stderr, 1, true)
    assert.matches("error: 6 of 49 lines failed\n", r.stderr, 1, true)

    -- what the sandbox saw: each sent line once, line 25 twice (the 429 with Retry-After)
    local seen = {}
    for _, req in ipairs(executes()) do
      local n = tonumber(cjson.decode(req.body).requestBody.text:match("line%-(%d+)"))
      seen[n] = (seen[n] or 0) + 1
    end
    for n = 1, 50 do
      local unsent = n == 20 or n == 30 or n == 40
      assert.equal(not unsent and (n == 25 and 2 or 1) or nil, seen[n], "line " .. n)
    end
    assert.same({}, sb:faults())
  end)

  it("--each from stdin; nothing to run is no failure", function()
    local r = alloy({ "run", "slack", "chat_postMessage", "--each", "-" },
      { stdin = '{"channel":"C","text":"a"}\n\n{"channel":"C","text":"b"}' })
    assert.equal(0, r.code, r.stderr)
    local out = run.lines(r.stdout)
    assert.equal(2, #out)
    assert.matches('^{"line":1,"ok":true,"result":', out[1])
    assert.matches('^{"line":3,"ok":true,"result":', out[2])
    assert.matches("2 lines: 2 succeeded, 0 failed, 1 blank skipped", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("executed", 1, true)) -- no progress line off a terminal
    run.write(dir .. "/two.jsonl", '{"channel":"C","text":"a"}\n{"channel":"C","text":"b"}\n')
    r = run.script("alloy_main", { "run", "slack", "chat_postMessage", "--each", "two.jsonl" },
      { env = run.env(sb, uid, { CONNECTION_ID = cred }), cwd = dir, tty = true })
    assert.equal(0, r.code, r.stdout)
    -- the progress line is redrawn in place, and cleared before each result line and the summary
    assert.matches("\r\27[K2/2 executed, 0 failed\r\27[K2 lines: 2 succeeded", r.stdout, 1, true)
    for line in r.stdout:gmatch("[^\n]+") do
      assert.is_nil(line:match("executed, %d+ failed[^\r]"), line) -- nothing printed behind the progress
    end
    r = alloy({ "run", "slack", "chat_postMessage", "--each", "-" }, { stdin = "" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    assert.matches("0 lines: 0 succeeded, 0 failed\n", r.stderr, 1, true)
  end)

  it("--each and --body @ read a pipe (a FIFO, as from --each <(cmd))", function()
    local fifo = dir .. "/lines"
    assert.is_true(os.execute("mkfifo " .. run.quote(fifo)) ~= false)
    local writer = io.popen("printf '%s\\n' '{\"channel\":\"C\",\"text\":\"a\"}' > " .. fifo, "w")
    local r = alloy { "run", "slack", "chat_postMessage", "--each", fifo }
    writer:close()
    assert.equal(0, r.code, r.stderr)
    assert.matches('^{"line":1,"ok":true,"result":', r.stdout)
    assert.equal(1, #executes())
  end)

  it("lists the resources in each shape the API may answer", function()
    local want = alloy({ "actions", "notion" }).stdout
    assert.matches("^pages\tcreate_page\tPOST\tCreate a page\n", want)
    for _, shape in ipairs({ "data", "array" }) do
      sb:set { resources_shape = shape }
      assert.equal(want, alloy({ "actions", "notion" }).stdout, shape)
    end
    sb:set { resources_shape = "strings" }
    local r = alloy { "actions", "notion" }
    assert.equal("pages\tcreate_page\t-\t-\npages\tget_page\t-\t-\nsearch\tsearch\t-\t-\n", r.stdout)
  end)

  describe("Lua API", function()
    it("list_resources, get_action and execute_action, alone and in a batch", function()
      local c = sb:client()
      local body = assert(c:list_resources("hubspot"))
      assert.equal("records", body.resources[1].name)
      local schema = assert(c:get_action("hubspot", "create_record"))
      assert.same({ "name" }, schema.action.requestBody.required)

      local bob = sb:create_user { username = "bob" }
      local creds = { [uid] = sb:create_credential { userId = uid, connector = "hubspot" }.credentialId,
                      [bob] = sb:create_credential { userId = bob, connector = "hubspot" }.credentialId }
      local requests, users = {}, { uid, bob }
      for i = 1, 20 do
        local user = users[i % 2 + 1]
        requests[i] = { op = "execute_action", args = { "hubspot", "create_record",
          { credentialId = creds[user], requestBody = { name = "record " .. i } },
          { headers = { ["x-alloy-userid"] = user } } } }
      end
      -- one with the other user's credential fails in place
      requests[21] = { op = "execute_action", args = { "hubspot", "create_record",
        { credentialId = creds[bob], requestBody = { name = "x" } }, { headers = { ["x-alloy-userid"] = uid } } } }
      local results, failures = c:batch(requests, { concurrency = 4 })
      assert.equal(1, failures)
      for i = 1, 20 do
        assert.is_true(results[i].ok, results[i].error)
        assert.equal("record " .. i, results[i].value.result.received.requestBody.name)
      end
      assert.is_false(results[21].ok)
      assert.equal("HTTP_403", results[21].code)
      c:close()
    end)

    it("execute is retried only on a refused connection or 429 with Retry-After", function()
      local c = sb:client { retries = 3 }
      local req = { credentialId = cred, requestBody = { channel = "C", text = "t" } }
      for _, f in ipairs({ { status = 429 }, { status = 503 }, { status = 503, headers = { ["Retry-After"] = "0" } },
                           { status = 502 }, { drop = true } }) do
        f.path = EXECUTE
        sb:fault(f)
        sb:clear_requests()
        local v, msg, _, res = c:execute_action("slack", "chat_postMessage", req)
        assert.is_nil(v)
        assert.equal(1, #executes(), msg)
        if res then assert.equal(1, res.attempts) end
        sb:clear_faults()
      end
      sb:fault { path = EXECUTE, status = 429, headers = { ["Retry-After"] = "0" } }
      local v, res = c:execute_action("slack", "chat_postMessage", req)
      assert.is_true(v.success)
      assert.equal(2, res.attempts)
      c:close()
      -- nothing listens: nothing was sent, so it is tried again
      local closed = require("alloy").new { api_key = sb.api_key, base_url = "http://127.0.0.1:" .. run.closed_port(),
                                            retries = 2, backoff = 0.01 }
      local _, msg, code = closed:execute_action("slack", "chat_postMessage", req)
      assert.equal("COULDNT_CONNECT", code)
      assert.matches("after 3 attempts", msg, 1, true)
      closed:close()
    end)
  end)

  it("the README's action commands, as printed", function()
    local env = { env = run.env(sb, uid, { CONNECTION_ID = cred }) }
    local out, err, code = readme.run("lua5.4 lua/list_actions.lua slack --search message", env)
    assert.equal(0, code, err)
    assert.equal("chat\tchat_postMessage\tPOST\tPost a message\n", out)
    out, err, code = readme.run("lua5.4 lua/describe_action.lua slack conversations_history", env)
    assert.equal(0, code, err)
    assert.matches("^token\theader\tstring\tyes\t.*\nchannel\tquery\tstring\tyes\t.*\nlimit\tquery\tinteger\tno\t", out)
    out, err, code = readme.run("lua5.4 lua/run_action.lua slack conversations_history --query channel=C0123", env)
    assert.equal(0, code, err)
    assert.same({ channel = "C0123" }, cjson.decode(out).result.received.queryParameters)
    -- luacheck: push no max line length (the README's command, one literal)
    out, err, code = readme.run(
      [[printf '%s\n' '{"channel":"C0123","text":"one"}' '{"channel":"C0123","text":"two"}' | lua5.4 lua/run_action.lua slack chat_postMessage --each - --concurrency 2]],
      env)
    -- luacheck: pop
    assert.equal(0, code, err)
    local lines = run.lines(out)
    assert.equal(2, #lines)
    assert.equal("two", cjson.decode(lines[2]).result.result.received.requestBody.text)
  end)

  it("never prints the API key", function()
    assert.same({}, run.leaks())
  end)
end)
