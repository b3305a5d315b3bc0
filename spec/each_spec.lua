-- --each as a stream: the input is read as the batch has room (never ahead of the window),
-- results come out in line order (or as they finish, --unordered), and whatever stops the run
-- (Ctrl-C, a second Ctrl-C, a read error, a line too long) every line read is reported once.
-- Through `alloy run --each` as a user runs it, and alloy.each from Lua, against the sandbox.
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"

local EXECUTE = "/actions/chat_postMessage/execute$"

describe("--each as a stream", function()
  local sb, uid, dir, cred
  Sandbox.per_test_connection("ada", "slack", function(s, u, c, d) sb, uid, cred, dir = s, u, c, d end)

  local function executes() return sb:count(EXECUTE) end

  local function body(i, text) return cjson.encode { channel = "C1", text = text or ("m" .. i) } end

  local function write_lines(name, n, text_of)
    local lines = {}
    for i = 1, n do lines[i] = body(i, text_of and text_of(i)) end
    run.write(dir .. "/" .. name, table.concat(lines, "\n") .. "\n")
  end

  local function results(stdout)
    local out = {}
    for l in stdout:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
    return out
  end

  -- `alloy run slack chat_postMessage <args>` in the background, in a process group of its own.
  local function spawn(args, shell_prefix)
    local argv = { run.quote(run.lua), run.quote(run.root .. "/lua/alloy_main.lua"), "run", "slack",
                   "chat_postMessage" }
    for _, a in ipairs(args) do argv[#argv + 1] = run.quote(a) end
    local h = run.spawn("alloy_main", args, { env = run.env(sb, uid, { CONNECTION_ID = cred, ALLOY_TIMEOUT = "60" }),
      cwd = dir, shell = "setsid sh -c " .. run.quote((shell_prefix or "") .. table.concat(argv, " "))
        .. ' & echo "pid $!"; wait $!' })
    local pid = assert(h:line():match("^pid (%d+)$"))
    return h, pid
  end

  -- Its output to the end (read as it comes: a pipe holds only 64 KiB), within 20 s.
  local function stop(h, pid)
    local stamp = dir .. "/done"
    os.execute(("(sleep 20; test -e %s || kill -KILL -%s) >/dev/null 2>&1 &"):format(run.quote(stamp), pid))
    local r = h:wait()
    run.write(stamp, "")
    assert.are_not.equal(137, r.code, "still running 20 s on")
    r.stdout = r.stdout:gsub("^pid %d+\n", "")
    return r
  end

  -- n lines, 4 in flight, line 1's execute held by the sandbox until sb:release("first").
  local function spawn_line1_held(n, ...)
    write_lines("lines.jsonl", n, function(i) return i == 1 and "held" or nil end)
    sb:fault { path = EXECUTE, match = "held", hold = "first" }
    sb:clear_requests()
    return spawn { "--each", "lines.jsonl", "--concurrency", "4", ... }
  end

  it("reads stdin as it comes: the first results are out while the input is still open", function()
    -- two lines, then a pipe that stays open: a reader that waits for the end shows nothing
    local h, pid = spawn({ "--each", "-" }, ("(printf '%%s\\n' %s %s; sleep 30) | "):format(
      run.quote(body(1)), run.quote(body(2))))
    local first, second = cjson.decode(h:line()), cjson.decode(h:line())
    assert.same({ 1, true, 2, true }, { first.line, first.ok, second.line, second.ok })
    os.execute("kill -INT -" .. pid)
    -- the writer ignores SIGINT (a background job's): it goes once the run has ended
    assert.is_truthy(run.wait_for(function() return h:stderr_so_far():find("\ninterrupted\n") end, 10))
    os.execute("kill -TERM -" .. pid)
    local r = stop(h, pid) -- the group's status is the TERM's; the run's own is shown by its last line
    assert.matches("2 lines: 2 succeeded, 0 failed\nStopped by Ctrl-C after reading line 2", r.stderr, 1, true)
    assert.matches("\ninterrupted\n", r.stderr, 1, true)
  end)

  it("never reads further ahead than the window while the oldest line is unfinished", function()
    local h, pid = spawn_line1_held(600)
    -- the window is 256 lines for 4 in flight: line 1 and 255 more, then nothing until 1 ends
    assert.is_truthy(run.wait_for(function() return executes() >= 256 end, 30))
    require("socket").sleep(0.5)
    assert.equals(256, executes())
    sb:release("first")
    local r = stop(h, pid)
    assert.equals(0, r.code, r.stderr)
    local out = results(r.stdout)
    assert.equals(600, #out)
    for i, l in ipairs(out) do assert.equals(i, l.line) end
    assert.equals(600, executes())
  end)

  it("--unordered: no window, each result as it finishes", function()
    local h, pid = spawn_line1_held(300, "--unordered")
    -- all the others finish while line 1 waits, and their results are out already
    local seen = {}
    for _ = 1, 299 do seen[#seen + 1] = cjson.decode(h:line()).line end
    assert.equals(300, executes())
    sb:release("first")
    local r = stop(h, pid)
    assert.equals(0, r.code, r.stderr)
    local out = results(r.stdout)
    assert.equals(300, #out)
    assert.equals(1, out[300].line)
    table.sort(seen)
    for i = 1, 299 do assert.equals(i + 1, seen[i]) end
    assert.matches("300 lines: 300 succeeded, 0 failed\n", r.stderr, 1, true)
  end)

  it("Ctrl-C: every line read reported once, in flight as INTERRUPTED with sent, the rest to paste, 130", function()
    write_lines("lines.jsonl", 10, function(i) return (i == 3 or i == 4) and "slow" or nil end)
    sb:fault { path = EXECUTE, match = "slow", delay = 30, times = 2 }
    sb:clear_requests()
    local h, pid = spawn { "--each", "lines.jsonl", "--concurrency", "2" }
    assert.is_truthy(run.wait_for(function() return executes() == 4 end, 30))
    require("socket").sleep(0.3)
    os.execute("kill -INT -" .. pid)
    local r = stop(h, pid)
    assert.equals(130, r.code, r.stderr)
    assert.equals(4, executes(), "nothing is sent after the Ctrl-C")
    local out = results(r.stdout)
    assert.equals(4, #out)
    for i = 1, 4 do assert.equals(i, out[i].line) end
    assert.is_true(out[1].ok and out[2].ok)
    for i = 3, 4 do
      assert.is_false(out[i].ok)
      assert.equals("INTERRUPTED", out[i].error.code)
      assert.is_true(out[i].error.sent)
    end
    local err = run.lines(r.stderr)
    assert.equals("interrupted", err[#err])
    assert.matches("4 lines: 2 succeeded, 0 failed, 2 interrupted (0 not sent, 2 sent: they may have run)\n",
      r.stderr, 1, true)
    assert.matches("Stopped by Ctrl-C after reading line 4: the lines after it were not read.\n", r.stderr, 1, true)
    local rest = r.stderr:match("The rest: ([^\n]+)\n")
    assert.equals("tail -n +5 lines.jsonl | " .. run.invoked("alloy_main") .. " run slack chat_postMessage --each -"
      .. " --concurrency 2", rest)
    -- pasted as printed, it runs lines 5 to 10
    sb:clear_requests()
    local again = run.script("alloy_main", {}, { env = run.env(sb, uid, { CONNECTION_ID = cred }), cwd = dir,
      shell = rest:gsub("^(tail %-n %+5 lines%.jsonl | )%S+ %S+", "%1" .. run.quote(run.lua) .. " "
        .. run.quote(run.root .. "/lua/alloy_main.lua")) })
    assert.equals(0, again.code, again.stderr)
    assert.equals(6, #results(again.stdout))
    assert.equals(6, executes())
    local texts = {}
    for _, q in ipairs(sb:requests()) do
      if q.path:find(EXECUTE) then texts[#texts + 1] = cjson.decode(q.body).requestBody.text end
    end
    table.sort(texts)
    assert.same({ "m10", "m5", "m6", "m7", "m8", "m9" }, texts)
  end)

  describe("a rate-limited API", function()
    after_each(function() sb:rate_limit(false) end)

    local function each(lines, extra)
      write_lines("lines.jsonl", lines)
      sb:clear_requests()
      extra.CONNECTION_ID = cred
      return run.alloy(sb, uid, dir, { "run", "slack", "chat_postMessage", "--each", "lines.jsonl",
        "--concurrency", "4" }, { extra = extra })
    end

    it("with Retry-After: the host's pauses are waited out together and every line runs", function()
      sb:rate_limit { per_second = 3, retry_after = 1, window = 0.5 }
      local r = each(12, { ALLOY_RETRIES = "5" })
      assert.equals(0, r.code, r.stderr)
      local out = results(r.stdout)
      assert.equals(12, #out)
      for i, l in ipairs(out) do assert.is_true(l.ok, i) end
      assert.matches("12 lines: 12 succeeded, 0 failed\n", r.stderr, 1, true)
    end)

    it("refusing every request: a few rounds, then the rest fail unsent, exit 1, every line reported", function()
      -- the action's schema, read first, is the one request let through
      sb:rate_limit { per_second = 1, retry_after = false, window = 3600 }
      local r = each(30, { ALLOY_RETRIES = "2" })
      assert.equals(1, r.code, r.stderr)
      local out, unsent = results(r.stdout), 0
      assert.equals(30, #out)
      for i, l in ipairs(out) do
        assert.equals(i, l.line)
        assert.is_false(l.ok)
        assert.equals("HTTP_429", l.error.code)
        if l.error.sent == false then unsent = unsent + 1 end
      end
      -- three rounds (retries = 2) of at most four (how many a round holds depends on how far
      -- the reader got when the first 429 came), and nothing more went out
      local sent = executes()
      assert.is_true(sent >= 3 and sent <= 12, sent .. " executes")
      assert.is_true(30 - unsent <= sent, unsent .. " unsent of 30, " .. sent .. " executes")
      assert.is_true(unsent >= 18, unsent .. " unsent")
      assert.matches("30 lines: 0 succeeded, 30 failed\n", r.stderr, 1, true)
    end)
  end)

  describe("alloy.each from Lua", function()
    local each = require "alloy.each"

    local function source_of(list)
      local i = 0
      return function()
        i = i + 1
        local v = list[i]
        if type(v) == "table" then return v[1], v[2] end
        return v
      end
    end

    it("a line too long, a read error: reported, and every line read accounted for", function()
      local c = sb:client()
      local seen = {}
      local s = each.run(c, source_of { "a", "", { false, "longer than 1 MiB (not sent)" }, "b", { nil, "EIO" } },
        function() return { op = "get_user", args = { uid } } end,
        function(n, r) seen[#seen + 1] = { n, r.ok, r.code } end, { concurrency = 2 })
      assert.same({ { 1, true }, { 3, false, "LINE_TOO_LONG" }, { 4, true } }, seen)
      assert.equals(4, s.read)
      assert.equals(1, s.blank)
      assert.equals("read", s.stopped)
      assert.equals("EIO", s.read_error)
    end)

    it("alloy.lines: a line over the cap dropped whole, CRLF, the last line; wait or not on a pipe", function()
      local alloy = require "alloy"
      local path = dir .. "/in.txt"
      run.write(path, "one\r\n" .. string.rep("x", 40) .. "\nthree\n" .. string.rep("y", 16) .. "\n\nlast")
      local r, kind = assert(alloy.lines(path, 16))
      assert.equals("file", kind)
      local got = {}
      while true do
        local line, err = r:read()
        if line == nil then break end
        got[#got + 1] = line == false and ("dropped: " .. err) or line
      end
      r:close()
      assert.same({ "one", "dropped: longer than 16 bytes (not sent)", "three", string.rep("y", 16), "", "last" }, got)
      -- a pipe with one line, then nothing yet: "wait" when asked not to
      local fifo = dir .. "/fifo"
      assert.equals(0, select(3, os.execute("mkfifo " .. run.quote(fifo))) or 0)
      local writer = io.popen("sleep 0.2; exec cat > " .. run.quote(fifo), "w")
      r, kind = assert(alloy.lines(fifo))
      assert.equals("fifo", kind)
      writer:write("first\n")
      writer:flush()
      assert.equals("first", r:read(true))
      assert.same({ nil, "wait" }, { r:read(false) })
      writer:write("sec")
      writer:flush()
      assert.same({ nil, "wait" }, { r:read(false) })
      writer:write("ond\n")
      writer:close()
      assert.equals("second", r:read(true))
      assert.is_nil(r:read(true))
      r:close()
      assert.has_error(function() r:read() end, "alloy.lines: reader is closed")
      for _, bad in ipairs { "/", "/dev/zero" } do
        local none, msg = alloy.lines(bad)
        assert.is_nil(none)
        assert.matches("is a %a+, not a file$", msg)
      end
    end)

    it("holds no more than the window: a slow first line, the rest wait to be read", function()
      sb:fault { path = "^/users/" .. uid .. "$", hold = "slow" }
      local c = sb:client()
      local read, most_ahead = 0, 0
      local out = {}
      local n = 0
      local function source()
        n = n + 1
        if n > 100 then return nil end
        read = read + 1
        if read - #out > most_ahead then most_ahead = read - #out end
        if read == 20 then sb:release("slow") end -- the window is full by now: nothing more is read
        return "x"
      end
      each.run(c, source, function() return { op = "get_user", args = { uid } } end,
        function(i) out[#out + 1] = i end, { concurrency = 2, window = 20 })
      assert.equals(100, #out)
      for i = 1, 100 do assert.equals(i, out[i]) end
      assert.is_true(most_ahead <= 20, most_ahead)
    end)
  end)
end)
