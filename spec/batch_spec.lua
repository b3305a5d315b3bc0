-- client:batch with its requests handed out by a function, the host-wide pause a 429 starts,
-- and what a Ctrl-C leaves: every request accounted for once, through on_result, with `sent`
-- saying whether one that never finished went out. Against the sandbox over loopback; times
-- are never asserted, counts of what the sandbox saw are.
local Sandbox = require "sandbox"
local run = require "run"

describe("client:batch", function()
  local sb, uid, dir
  Sandbox.per_test_user("batch", function(s, u) sb, uid, dir = s, u, run.tmpdir() end)
  after_each(function()
    sb:rate_limit(false)
    run.rmdir(dir)
  end)

  local function count(pattern) return sb:count(pattern) end

  -- A requests function over 1..n (each a GET of /users/{uid}, tagged by a query parameter),
  -- recording how many were handed out and not yet answered.
  local function source(n, c)
    local s = { given = 0, seen = {}, most_open = 0 }
    function s.next()
      if s.given == n then return nil end
      s.given = s.given + 1
      return { path = "/users/{userId}", params = { userId = uid }, query = { i = tostring(s.given) } }
    end
    function s.on_result(i, result)
      assert(not s.seen[i], "request " .. i .. " answered twice")
      s.seen[i] = result
      local open = s.given - (s.answered or 0)
      if open > s.most_open then s.most_open = open end
      s.answered = (s.answered or 0) + 1
      if c then assert(open <= c, open .. " handed out and unanswered") end
    end
    return s
  end

  describe("with requests from a function", function()
    it("sends each once, answers each once by its place, and holds no more than the concurrency", function()
      local s = source(50, 4)
      local ok, failures = sb:client():batch(s.next, { concurrency = 4, on_result = s.on_result })
      assert.is_true(ok)
      assert.equals(0, failures)
      assert.equals(50, s.answered)
      for i = 1, 50 do assert.is_true(s.seen[i].ok, i) end
      assert.is_true(s.most_open <= 4)
      local sent = {}
      for _, r in ipairs(sb:requests()) do
        local i = tonumber(r.query:match("i=(%d+)"))
        assert.is_nil(sent[i], "sent twice: " .. tostring(i))
        sent[i] = true
      end
      for i = 1, 50 do assert.is_true(sent[i], i) end
    end)

    it("false means none now: it is asked again once a result is out", function()
      local c = sb:client()
      local queue, asked_empty, results = {}, 0, {}
      queue[1] = { op = "get_user", args = { uid } }
      local follow_ups = 3
      local function next_request()
        if #queue > 0 then return table.remove(queue, 1) end
        if follow_ups == 0 then return nil end
        asked_empty = asked_empty + 1
        return false
      end
      -- each result queues the next request, as a crawler following pages would
      local ok = c:batch(next_request, { concurrency = 8, on_result = function(i, r)
        results[i] = r.ok
        if follow_ups > 0 then
          follow_ups = follow_ups - 1
          queue[#queue + 1] = { op = "get_user", args = { uid } }
        end
      end })
      assert.is_true(ok)
      assert.same({ true, true, true, true }, results)
      assert.is_true(asked_empty >= 3)
      assert.equals(4, count("^/users/"))
    end)

    it("false with nothing in flight raises: the batch would never end", function()
      local c = sb:client()
      assert.has_error(function()
        c:batch(function() return false end, { on_result = function() end })
      end, "client:batch: the requests function said false (none now) with none in flight")
      -- the client is usable after
      assert(c:get_user(uid))
    end)

    it("needs on_result, and libcurl (not a transport)", function()
      local c = sb:client()
      assert.has_error(function() c:batch(function() return nil end) end,
        "client:batch: requests from a function need on_result (nothing is kept)")
      local t = sb:client { transport = function() return { status = 200, headers = {}, body = "{}" } end }
      assert.has_error(function()
        t:batch(function() return nil end, { on_result = function() end })
      end, "client:batch: requests from a function go over libcurl, not a transport")
    end)

    it("an error raised by the function stops the batch and is raised again", function()
      local s = source(5)
      local given = 0
      local c = sb:client()
      assert.has_error(function()
        c:batch(function()
          given = given + 1
          if given == 3 then error("no more ids", 0) end
          return s.next()
        end, { concurrency = 1, on_result = s.on_result })
      end, "no more ids")
      assert(c:get_user(uid))
    end)

    it("a function that closes the client: what it handed out then is not sent", function()
      local s = source(5)
      local c = sb:client()
      sb:clear_requests()
      assert.has_error(function()
        c:batch(function()
          if s.given == 2 then c:close() end
          return s.next()
        end, { concurrency = 1, on_result = s.on_result })
      end, "alloy: client is closed")
      assert.equals(2, #sb:requests()) -- the first two; the third came with the close
      assert.is_truthy(s.seen[1] and s.seen[2])
      assert.is_nil(s.seen[3])
    end)

    it("a bad request from the function fails in place; misuse raises", function()
      local c = sb:client()
      local items = { { op = "get_user", args = { "a\nb" } }, { op = "get_user", args = { uid } } }
      local got = {}
      local ok, failures = c:batch(function() return table.remove(items, 1) end,
        { on_result = function(i, r) got[i] = r end })
      assert.is_true(ok)
      assert.equals(1, failures)
      assert.is_false(got[1].ok)
      assert.is_true(got[2].ok)
      assert.has_error(function()
        c:batch(function() return { op = "no_such_op" } end, { on_result = function() end })
      end, "client:batch: request 1: unknown op")
    end)
  end)

  describe("after a 429", function()
    it("the host's pause holds back every request to it, not just the one answered 429", function()
      -- two at a time: 1 is slow, 2 is refused with Retry-After 1; 3 starts when 1 is done
      -- and must wait with 2 for the host. (A lower bound: a slow machine only sends later.)
      sb:fault { path = "^/users/" .. uid .. "$", delay = 0.3 }
      sb:fault { path = "^/users$", status = 429, headers = { ["Retry-After"] = "1" } }
      sb:clear_requests()
      local results, failures = sb:client { retries = 2 }:batch({
        { op = "get_user", args = { uid } },
        { op = "list_users" },
        { op = "list_user_credentials", args = { uid } },
      }, { concurrency = 2 })
      assert.equals(0, failures)
      assert.equals(2, results[2].attempts)
      local refused_at, later = nil, {}
      for _, r in ipairs(sb:requests()) do
        if r.path == "/users" and not refused_at then refused_at = r.time
        elseif r.path ~= "/users/" .. uid then later[#later + 1] = r end
      end
      assert.equals(2, #later)
      for _, r in ipairs(later) do
        assert.is_true(r.time >= refused_at + 0.9, r.path .. " sent " .. (r.time - refused_at) .. " s after the 429")
      end
    end)

    it("a host that keeps refusing: the rest fail unsent, sent = false, each once", function()
      sb:rate_limit { per_second = 0, retry_after = false }
      sb:clear_requests()
      local s = source(20, 4)
      local ok, failures = sb:client { retries = 2, backoff = 0.05 }:batch(s.next,
        { concurrency = 4, on_result = s.on_result })
      assert.is_true(ok)
      assert.equals(20, failures)
      assert.equals(20, s.answered)
      -- one round of four, then each retried twice: three rounds, and nothing more is sent
      assert.equals(12, #sb:requests())
      local tried, unsent = 0, 0
      for i = 1, 20 do
        local r = s.seen[i]
        assert.equals("HTTP_429", r.code, i)
        if r.sent == false then
          unsent = unsent + 1
          assert.matches("not sent: the API kept answering 429", r.error, 1, true)
        else
          tried = tried + 1
          assert.equals(3, r.res.attempts)
        end
      end
      assert.equals(4, tried)
      assert.equals(16, unsent)
    end)

    it("a host refusing, then answering: the refusal ends, and what comes after is sent", function()
      -- retries = 0: the first 429 makes the host refusing; the other request of that round,
      -- answered 200 after it, ends that. The function hands out the rest only then. The two
      -- go to two paths, so each takes its own fault whichever reaches the sandbox first.
      sb:fault { path = "^/users/" .. uid .. "$", status = 429, times = 1 }
      sb:fault { path = "^/users/" .. uid .. "/credentials$", delay = 0.5, times = 1 }
      sb:clear_requests()
      local s = source(6, 2)
      local function next_request()
        if s.given == 2 and not s.seen[2] then return false end
        local req = s.next()
        if req and s.given == 2 then req.path = "/users/{userId}/credentials" end
        return req
      end
      sb:client { retries = 0 }:batch(next_request, { concurrency = 2, on_result = s.on_result })
      assert.equals("HTTP_429", s.seen[1].code)
      for i = 2, 6 do assert.is_true(s.seen[i].ok, i) end
      assert.equals(6, #sb:requests())
    end)

    it("an array batch pauses the same way, and an answer other than 429 ends the run of refusals", function()
      sb:fault { path = "^/users/" .. uid .. "$", status = 429, headers = { ["Retry-After"] = "1" }, times = 2 }
      sb:clear_requests()
      local reqs = {}
      for i = 1, 6 do reqs[i] = { op = "get_user", args = { uid } } end
      local results, failures = sb:client { retries = 2 }:batch(reqs, { concurrency = 2 })
      assert.equals(0, failures)
      for i = 1, 6 do assert.is_true(results[i].ok, i) end
      -- both first requests were refused in one round; each was sent again once
      assert.equals(8, #sb:requests())
    end)
  end)

  describe("Ctrl-C", function()
    -- A script (a real child process, in its own process group) whose batch prints one line a
    -- result, then what batch did after: the host's stop comes once every result is out.
    local SCRIPT = [[
package.cpath = %q .. package.cpath
local alloy = require "alloy"
io.stdout:setvbuf("line")
local c = alloy.new { api_key = os.getenv("ALLOY_API_KEY"), base_url = os.getenv("ALLOY_BASE_URL"),
  timeout = 60, retries = 0 }
local uid = os.getenv("ALLOY_USER_ID")
local paths = { "/users/{userId}", "/users/{userId}/slow", "/users/{userId}", "/users/{userId}/slow",
  "/users/{userId}", "/users/{userId}" }
-- two at a time: 1 and 3 answer, 2 and 4 stall and hold both places; 5 and 6 wait
local reqs = {}
for i, p in ipairs(paths) do reqs[i] = { path = p, params = { userId = uid }, query = { i = tostring(i) } } end
local mode = ...
local requests = reqs
if mode == "function" or mode == "callback" then
  local k = 0
  requests = function() k = k + 1; return reqs[k] end
end
local ok, err = pcall(function()
  c:batch(requests, { concurrency = 2, on_result = function(i, r)
    if mode == "callback" and i == 1 then
      print("inside") -- the spec's Ctrl-C comes now; lua.c's stop would land in this loop
      local t = os.time()
      while os.time() < t + 2 do end
    end
    print(i, r.ok and "ok" or r.code, tostring(r.sent))
  end })
  print("returned")
end)
print("stopped", ok, err)
]]

    local function interrupted(mode, ready)
      sb:fault { path = "/slow$", delay = 30, times = 2 }
      sb:clear_requests()
      local src = dir .. "/batch.lua"
      local abi = run.lua:match("(lua5%.%d)$") or run.lua:match("(luajit)$") or "lua5.4"
      run.write(src, SCRIPT:format(run.root .. "/build/" .. abi .. "/?.so;"))
      local h = run.spawn("batch-ctrl-c", {}, { env = run.env(sb, uid), cwd = dir,
        shell = "setsid " .. run.quote(run.lua) .. " " .. run.quote(src) .. " " .. mode
          .. ' & echo "pid $!"; wait $!' })
      local pid = assert(h:line():match("^pid (%d+)$"))
      if ready then
        assert.equals("inside", h:line())
      else
        assert.is_truthy(run.wait_for(function() return count("/slow$") == 2 end, 30))
        require("socket").sleep(0.3)
      end
      local at_signal = #sb:requests()
      os.execute("kill -INT -" .. pid)
      local exited = run.wait_for(function() return not run.alive(pid) end, 10) ~= nil
      if not exited then os.execute("kill -KILL -" .. pid) end
      local r = h:wait()
      assert.is_true(exited, "still running 10 s after Ctrl-C")
      assert.equals(at_signal, #sb:requests(), "sent after the signal")
      return r, at_signal
    end

    local function by_request(stdout)
      local lines, ends = {}, nil
      for line in stdout:gmatch("[^\n]+") do
        local i, what, sent = line:match("^(%d+)\t(%S+)\t(%S+)$")
        if i then
          assert.is_nil(lines[tonumber(i)], "request " .. i .. " reported twice")
          lines[tonumber(i)] = what .. " " .. sent
        elseif not line:match("^pid ") and line ~= "inside" then
          ends = (ends and ends .. "\n" or "") .. line
        end
      end
      return lines, ends
    end

    it("every request of an array ends once: done, interrupted in flight (sent), or never sent", function()
      local r, at_signal = interrupted("array")
      local lines, ends = by_request(r.stdout)
      assert.equals("ok nil", lines[1])
      assert.equals("INTERRUPTED true", lines[2])
      assert.equals("ok nil", lines[3])
      assert.equals("INTERRUPTED true", lines[4])
      assert.equals("INTERRUPTED false", lines[5])
      assert.equals("INTERRUPTED false", lines[6])
      assert.equals(4, at_signal)
      -- batch ran to its end; the interpreter's stop came right after it returned
      assert.matches("^stopped\tfalse\t[^\n]-interrupted!$", ends) -- 5.1: at batch.lua:27
      assert.equals(0, r.code, r.stderr)
    end)

    it("from a function: what it handed out ends once, and nothing more is asked for", function()
      local r, at_signal = interrupted("function")
      local lines, ends = by_request(r.stdout)
      assert.equals("ok nil", lines[1])
      assert.equals("INTERRUPTED true", lines[2])
      assert.equals("ok nil", lines[3])
      assert.equals("INTERRUPTED true", lines[4])
      -- 5 and 6 were never asked for: the function hands out a request only for a free place
      assert.is_nil(lines[5])
      assert.is_nil(lines[6])
      assert.equals(4, at_signal)
      assert.matches("^stopped\tfalse\t[^\n]-interrupted!$", ends) -- 5.1: at batch.lua:27
      assert.equals(0, r.code, r.stderr)
    end)

    it("a Ctrl-C while on_result runs: the callback ends, then the batch stops and accounts for all", function()
      local r = interrupted("callback", true)
      local lines, ends = by_request(r.stdout)
      assert.equals("ok nil", lines[1])
      assert.equals("INTERRUPTED true", lines[2])
      -- 3 was handed out only once 1's callback had returned, and the Ctrl-C came first
      for i = 3, 6 do assert.is_nil(lines[i], i) end
      assert.matches("^stopped\tfalse\t[^\n]-interrupted!$", ends) -- 5.1: at batch.lua:27
      assert.equals(0, r.code, r.stderr)
    end)
  end)
end)
