-- alloy.each: one request per line of input, sent through client:batch with bounded
-- concurrency, every line accounted for once, whatever stops the run. The input is read as
-- the batch has room (a requests function): memory follows the concurrency and the window,
-- not the length of the input. `run --each` and `trigger --each` are this runner with their
-- own request builder.
--
-- M.run(client, source, build, on_result, opts) -> summary
--   source(may_wait) -> the next line (without its newline); nil at the end; nil, message
--                      when reading failed (the end too); false, message for a line that
--                      cannot be used (it fails, unsent, and the run goes on); M.WAIT for no
--                      line yet, only when may_wait is false (requests are in flight: the
--                      source is asked again when one has finished)
--   build(line, n)  -> the request of line n for client:batch ({op =, args =} or a request
--                      table), or nil, message, code: the line fails, unsent
--   on_result(n, r) each line's result, in line order (blank lines have none; with
--                      opts.unordered, as they come): r is {ok = true, value =, res =} or
--                      {ok = false, error =, code =, res =, sent =} (sent: whether a request
--                      that never finished had gone out)
--   opts            concurrency (client:batch's); window: lines read ahead of the oldest
--                      unfinished one, for line order (default 16 x concurrency, at least
--                      256); unordered; on_progress(done, read, failed) as results come
--   summary         {read =, blank =, sent =, failed =, interrupted =, unsent =,
--                      stopped = nil | "interrupted" | "read", read_error =}: lines read
--                      (blank ones included), the number of the last; a Ctrl-C ends the run
--                      with every line read accounted for (stopped = "interrupted")
-- M.reader(lines) -> a source over an alloy.lines reader (a file, a pipe or a terminal)
-- M.lines(text)   -> a source over the lines of text ("\r\n" or "\n")
-- M.object(line)  -> the JSON object of a line, or nil, message, "INVALID_JSON" (a build's refusal)
-- M.options(args, single, default) -> concurrency | nil, err (status 2): the --each,
--   --concurrency and --unordered options as a command takes them: those two only with
--   --each, --each not with the single run's input (args[single]: "body", "data")
-- M.print(out, client, path, build, opts) -> 0 | nil, err: the --each of a command: the lines of
--   file `path` (- for stdin), one line on stdout per input line, in order (opts.unordered: as
--   they finish), {"line":n,"ok":true,"result":...} or {"line":n,"ok":false,"error":{message,
--   code, status[, sent]}}, a progress line on a terminal (opts.verb), the summary on stderr;
--   err: status 1 when a line failed or the input could not be read to its end, 2 when the
--   file cannot be opened, 130 after a Ctrl-C (opts.rerun(from) -> a command line that runs
--   the lines from `from` on, for the summary). opts.concurrency; opts.result(value, res) ->
--   a result's JSON text (default: the answer as the API sent it).
local M = {}

-- A source's answer when it has no line yet and may not wait for one.
M.WAIT = setmetatable({}, { __name = "alloy.each.WAIT" })

-- A source over an alloy.lines reader: waits for a line only when nothing is in flight.
function M.reader(lines)
  return function(may_wait)
    local line, err = lines:read(may_wait)
    if line == nil and err == "wait" then return M.WAIT end
    return line, err
  end
end

function M.lines(text)
  text = text:gsub("\r\n", "\n")
  if text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  return text:gmatch("([^\n]*)\n")
end

function M.object(line)
  local v, err = require("alloy.input").json_object(line)
  if not v then
    local what = err:match("^it is (.*)$")
    return nil, what and ("not a JSON object (" .. what .. ")") or ("not JSON: " .. err), "INVALID_JSON"
  end
  return v
end

function M.options(args, single, default)
  local failure = require "alloy.failure"
  if args.each and args[single] then
    return nil, failure.usage(("--each and --%s do not go together"):format(single),
      ("--each reads one %s per line"):format(single == "body" and "body" or "JSON object"))
  end
  for _, flag in ipairs { "concurrency", "unordered" } do
    if args[flag] and not args.each then
      return nil, failure.usage(("--%s goes with --each"):format(flag), "--each <file> --" .. flag
        .. (flag == "concurrency" and " <n>" or ""))
    end
  end
  if not args.concurrency then return default end
  local n, msg = require("alloy").check_option("concurrency", tonumber(args.concurrency) or args.concurrency)
  if not n then return nil, failure.usage("--concurrency: " .. msg) end
  return n
end

local function interrupted(err)
  return tostring(err):lower():find("interrupted", 1, true) ~= nil
end

function M.run(client, source, build, on_result, opts)
  opts = opts or {}
  local unordered = opts.unordered
  local window = opts.window or math.max(256, 16 * (opts.concurrency or 16))
  local s = { read = 0, blank = 0, sent = 0, failed = 0, interrupted = 0, unsent = 0 }
  -- done[n]: line n's result (false: blank) until its turn; line_of[i]: the line of the
  -- batch's request i while it is in flight
  local done, line_of = {}, {}
  local next_out, finished, eof = 1, 0, false

  local function flush()
    while next_out <= s.read and done[next_out] ~= nil do
      local r = done[next_out]
      done[next_out] = nil
      if r then on_result(next_out, r) end
      next_out = next_out + 1
    end
  end

  local function deliver(n, r)
    if r and not r.ok then
      s.failed = s.failed + 1
      if r.code == "INTERRUPTED" then
        s.interrupted = s.interrupted + 1
        if r.sent == false then s.unsent = s.unsent + 1 end
      end
    end
    if unordered then
      if r then on_result(n, r) end
    else
      done[n] = r or false
      flush()
    end
  end

  -- The batch's requests: the next line that makes one, read only now. false while the
  -- oldest unfinished line holds the window (it is in flight: a result will come).
  local function next_request()
    while not eof do
      if not unordered and s.read - next_out + 1 >= window then return false end
      local line, err = source(s.sent == finished)
      if line == M.WAIT then return false end
      if line == nil then
        eof = true
        -- a Ctrl-C while a pipe or a terminal is read ends the read with EINTR
        if err then s.stopped, s.read_error = interrupted(err) and "interrupted" or "read", err end
        return nil
      end
      s.read = s.read + 1
      local n = s.read
      if line == false then
        deliver(n, { ok = false, error = err, code = "LINE_TOO_LONG" })
      elseif line:match("^%s*$") then
        s.blank = s.blank + 1
        deliver(n, false)
      else
        local req, msg, code = build(line, n)
        if req then
          s.sent = s.sent + 1
          line_of[s.sent] = n
          return req
        end
        deliver(n, { ok = false, error = msg, code = code })
      end
    end
    return nil
  end

  local ok, err = pcall(function()
    client:batch(next_request, { concurrency = opts.concurrency, on_result = function(i, r)
      local n = line_of[i]
      line_of[i] = nil
      finished = finished + 1
      deliver(n, r.ok and { ok = true, value = r.value, res = r } or r)
      if opts.on_progress then opts.on_progress(finished, s.read - s.blank, s.failed) end
    end })
  end)
  if not ok then
    if not interrupted(err) then error(err, 0) end
    s.stopped = "interrupted"
    eof = true
  end
  -- A second Ctrl-C can end the batch before it reported what was in flight: those lines end
  -- here, whether they went out unknown.
  local left = {}
  for _, n in pairs(line_of) do left[#left + 1] = n end
  table.sort(left)
  for _, n in ipairs(left) do
    deliver(n, { ok = false, code = "INTERRUPTED", error = "interrupted: its answer was not read" })
  end
  flush()
  return s
end

local function error_json(r)
  local json = require "alloy.json"
  local sent = r.sent
  if sent == nil and r.code == "INTERRUPTED" then sent = json.null end -- unknown
  return json.encode({ message = r.error, code = r.code or json.null,
                       status = type(r.res) == "table" and r.res.status or json.null, sent = sent })
end

-- The API's answer as JSON text: as it was sent when it was JSON (its numbers intact), else
-- the value.
local function as_sent(value, res)
  local json = require "alloy.json"
  if type(res) == "table" and res.json ~= nil and type(res.body) == "string" then return json.as_sent(res.body) end
  return json.encode(value == nil and json.null or value)
end
M.as_sent = as_sent

-- The command line that runs command `name` with `words` over the lines of --each's file from
-- line `from` on (tail reads them; the options this run was given follow).
function M.rerun_line(ctx, name, words, from)
  local args, all = ctx.args, {}
  for i, w in ipairs(words) do all[i] = w end
  all[#all + 1], all[#all + 2] = "--each", "-"
  if args.concurrency then all[#all + 1], all[#all + 2] = "--concurrency", args.concurrency end
  if args.unordered then all[#all + 1] = "--unordered" end
  return ("tail -n +%d %s | %s"):format(from, require("alloy.ids").quote(args.each),
    ctx:command(name, (table.unpack or unpack)(all))) -- luacheck: ignore 113 (5.1)
end

local function plural(n, word) return ("%d %s%s"):format(n, word, n == 1 and "" or "s") end

function M.print(out, client, path, build, opts)
  local failure, input, output = require "alloy.failure", require "alloy.input", require "alloy.output"
  opts = opts or {}
  local lines, oerr = require("alloy").lines(path, input.MAX)
  if not lines then
    return nil, failure.usage("cannot read --each: " .. output.printable(tostring(oerr)),
      "--each names a file of JSON lines, or -")
  end
  local result = opts.result or as_sent
  local s = M.run(client, M.reader(lines), build, function(n, r)
    out:out(('{"line":%d,"ok":%s,"%s":%s}\n'):format(n, r.ok and "true" or "false", r.ok and "result" or "error",
      r.ok and result(r.value, r.res) or error_json(r)))
  end, { concurrency = opts.concurrency, unordered = opts.unordered, on_progress = function(done, read, bad)
    out:status(("%d/%d %s, %d failed"):format(done, read, opts.verb or "sent", bad))
  end })
  lines:close()
  local count = s.read - s.blank
  local how = ("%d succeeded, %d failed"):format(count - s.failed, s.failed - s.interrupted)
  if s.interrupted > 0 then
    how = how .. (", %d interrupted (%d not sent, %d sent: they may have run)"):format(s.interrupted, s.unsent,
      s.interrupted - s.unsent)
  end
  out:say("%s: %s%s", plural(count, "line"), how, s.blank > 0 and (", %d blank skipped"):format(s.blank) or "")
  if s.stopped == "interrupted" then
    out:say("Stopped by Ctrl-C after reading line %d: the lines after it were not read.", s.read)
    local again = opts.rerun and path ~= "-" and opts.rerun(s.read + 1)
    if again then out:say("The rest: %s", again) end
    if s.interrupted > 0 then
      out:say([[The interrupted lines are on stdout with "code":"INTERRUPTED" and "sent"; run those with "sent":false]]
        .. " again.")
    end
    return nil, failure.new("interrupted", nil, failure.INTERRUPTED)
  end
  if s.stopped == "read" then
    return nil, failure.new(("cannot read --each after line %d: %s"):format(s.read, tostring(s.read_error)),
      "the lines read before it ran and are on stdout")
  end
  if s.failed > 0 then
    return nil, failure.new(("%d of %d lines failed"):format(s.failed, count),
      [[the failed lines are on stdout with "ok":false and their error]])
  end
  return 0
end

return M
