-- alloy.each: one request per line of input, sent through client:batch with bounded
-- concurrency, every line accounted for and reported in line order. `run --each` and
-- `trigger --each` are this runner with their own request builder.
--
-- M.run(client, source, build, on_result, opts) -> lines, blank
--   source()        -> the next line (without its newline), or nil at the end
--   build(line, n)  -> the request of line n for client:batch ({op =, args =} or a request
--                      table), or nil, message, code: the line fails, unsent
--   on_result(n, r) each line's result, in line order (blank lines have none): r is
--                      {ok = true, value =, res =} or {ok = false, error =, code =, res =}
--   opts            concurrency (client:batch's), on_progress(done, sent, failed) as results come
-- M.lines(text)   -> a source over the lines of text ("\r\n" or "\n")
-- M.object(line)  -> the JSON object of a line, or nil, message, "INVALID_JSON" (a build's refusal)
-- M.options(args, single, default) -> concurrency | nil, err (status 2): the --each and
--   --concurrency options as a command takes them: --concurrency only with --each, --each not
--   with the single run's input (args[single]: "body", "data")
-- M.print(out, client, path, build, opts) -> 0 | nil, err: the --each of a command: the lines of
--   file `path` (- for stdin, alloy.input.read), one line on stdout per input line, in order,
--   {"line":n,"ok":true,"result":...} or {"line":n,"ok":false,"error":{message, code, status}},
--   a progress line on a terminal (opts.verb: "3/10 executed, 1 failed"), the summary on
--   stderr; err (status 1) when a line failed, (status 2) when the file cannot be read.
--   opts.concurrency; opts.result(value, res) -> a result's JSON text (default: the answer as
--   the API sent it).
local M = {}

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
  if args.concurrency and not args.each then
    return nil, failure.usage("--concurrency goes with --each", "--each <file> --concurrency <n>")
  end
  if not args.concurrency then return default end
  local n, msg = require("alloy").check_option("concurrency", tonumber(args.concurrency) or args.concurrency)
  if not n then return nil, failure.usage("--concurrency: " .. msg) end
  return n
end

function M.run(client, source, build, on_result, opts)
  opts = opts or {}
  -- done[n]: line n's result until it is handed on; pending[n]: sent, no result yet
  local done, pending, requests, line_of = {}, {}, {}, {}
  local n, blank, finished, failed = 0, 0, 0, 0
  local next_out = 1
  local function flush()
    while next_out <= n and not pending[next_out] do
      if done[next_out] then
        local r = done[next_out]
        done[next_out] = nil
        on_result(next_out, r)
      end
      next_out = next_out + 1
    end
  end
  for line in source do
    n = n + 1
    if line:match("^%s*$") then
      blank = blank + 1
    else
      local req, msg, code = build(line, n)
      if req then
        requests[#requests + 1] = req
        line_of[#requests] = n
        pending[n] = true
      else
        failed = failed + 1
        done[n] = { ok = false, error = msg, code = code }
      end
    end
  end
  local sent = #requests
  flush()
  if sent > 0 then
    client:batch(requests, { concurrency = opts.concurrency, on_result = function(i, r)
      local ln = line_of[i]
      if not r.ok then failed = failed + 1 end
      done[ln], pending[ln] = r.ok and { ok = true, value = r.value, res = r } or r, nil
      finished = finished + 1
      flush()
      if opts.on_progress then opts.on_progress(finished, sent, failed) end
    end })
  end
  return n - blank, blank
end

local function error_json(r)
  local json = require "alloy.json"
  return json.encode({ message = r.error, code = r.code or json.null,
                       status = type(r.res) == "table" and r.res.status or json.null })
end

-- The API's answer as JSON text: as it was sent when it was JSON (its numbers intact), else
-- the value.
local function as_sent(value, res)
  local json = require "alloy.json"
  if type(res) == "table" and res.json ~= nil and type(res.body) == "string" then return json.as_sent(res.body) end
  return json.encode(value == nil and json.null or value)
end
M.as_sent = as_sent

function M.print(out, client, path, build, opts)
  local failure, input = require "alloy.failure", require "alloy.input"
  opts = opts or {}
  local text, rerr = input.read(path)
  if not text then
    return nil, failure.usage("cannot read --each: " .. tostring(rerr), "--each names a file of JSON lines, or -")
  end
  local result, failed = opts.result or as_sent, 0
  local lines, blank = M.run(client, M.lines(text), build, function(n, r)
    if not r.ok then failed = failed + 1 end
    out:out(('{"line":%d,"ok":%s,"%s":%s}\n'):format(n, r.ok and "true" or "false", r.ok and "result" or "error",
      r.ok and result(r.value, r.res) or error_json(r)))
  end, { concurrency = opts.concurrency, on_progress = function(done, sent, bad)
    out:status(("%d/%d %s, %d failed"):format(done, sent, opts.verb or "sent", bad))
  end })
  out:say("%d line%s: %d succeeded, %d failed%s", lines, lines == 1 and "" or "s", lines - failed, failed,
    blank > 0 and (", %d blank skipped"):format(blank) or "")
  if failed > 0 then
    return nil, failure.new(("%d of %d lines failed"):format(failed, lines),
      [[the failed lines are on stdout with "ok":false and their error]])
  end
  return 0
end

return M
