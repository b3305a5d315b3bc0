-- alloy run (run_action.lua): execute a connector's action with a user's credential
-- (connection) and print the connector's answer as JSON; --each runs it once per line of
-- JSON bodies, as a batch.
local config = require "alloy.config"

local M = {
  summary = "execute an action with a connection, once or --each line of JSON",
  description = "Execute a connector's action with a connection (credential) and print the connector's answer on"
    .. " stdout as JSON. The action's schema is read first: a required parameter that is missing is named and"
    .. " nothing is sent (exit 2).",
  user = true,
  arguments = {
    { "connector", "The connector id, as {cmd:connectors} lists it (slack, notion, ...).", optional = true },
    { "action", "The action id, as {cmd:actions} <connector> lists it.", optional = true },
  },
  options = {
    { "--credential", "<id>", "The connection (credential) id, 24 hex digits; default CONNECTION_ID." },
    { "-b --body", "<json>", "The request body: JSON, @file, or - for stdin." },
    { "--query", "<k=v>", "A query parameter (repeatable).", many = true },
    { "--path", "<k=v>", "A path parameter (repeatable).", many = true },
    { "--header", "<k=v>", "An additional header (repeatable).", many = true },
    { "--each", "<file>", "Run once per line of this file of JSON bodies (- for stdin)." },
    { "--concurrency", "<n>", ("Executes in flight with --each (default %d)."):format(
      config.DEFAULTS.execute_concurrency) },
  },
  examples = {
    { [[slack chat_postMessage --body '{"channel":"C0123","text":"Hello"}']] },
    { "slack conversations_history --query channel=C0123 --credential 66fb066c3793749b64c214bc" },
    { "slack chat_postMessage --each messages.jsonl --concurrency 8" },
  },
  notes = [[
The body is --body JSON, --body @file, --body - (stdin), or stdin when it is not a terminal.
With --each, each line of FILE (- for stdin) is one JSON body: one result line per input line on
stdout, in line order ({"line":n,"ok":true,"result":...} or {"line":n,"ok":false,"error":{...}}),
a summary on stderr, exit 1 when any line failed. Blank lines are skipped and counted.
An execute is not retried automatically, except when the connection was refused or the API
answered 429 with Retry-After: it may have acted.]],
}

-- The "k=v" options of flag as into[flag], a table (left nil when there are none).  -> true | nil, err
local function pairs_of(list, flag, into)
  local failure, output = require "alloy.failure", require "alloy.output"
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k or k:find("[%c]") or v:find("[\r\n%z]") then
      return nil, failure.usage(("--%s takes name=value, not %q"):format(flag, output.printable(kv)),
        ("--%s name=value, once per %s"):format(flag, flag))
    end
    into[flag] = into[flag] or {}
    into[flag][k] = v
  end
  return true
end

-- Bodies are JSON a person or a program wrote; more than this is a mistake (/dev/zero), not input.
local MAX_INPUT = 64 * 1024 * 1024

-- The text of a file named on the command line (- for stdin). A pipe is fine (`--each <(cmd)`),
-- a directory or a socket has no text; the read is capped.  -> text | nil, message
local function read_all(path)
  local f = io.stdin
  if path ~= "-" then
    local info, ierr = require("alloy").file_info(path, true)
    if not info then return nil, ierr end
    if info.type == "directory" or info.type == "socket" then
      return nil, ("%s is a %s, not a file"):format(require("alloy.output").printable(path), info.type)
    end
    local oerr
    f, oerr = io.open(path, "rb")
    if not f then return nil, oerr end
  end
  local s, rerr = f:read(MAX_INPUT + 1)
  if f ~= io.stdin then f:close() end
  if s == nil and rerr then return nil, rerr end
  s = s or ""
  if #s > MAX_INPUT then return nil, "more than 64 MiB" end
  return s
end

-- A JSON object given by a person: decoded, and an object (a table that is not an array).
-- -> value | nil, why
local function json_object(text)
  local v, err = require("alloy.json").decode(text)
  if v == nil then return nil, err end
  if type(v) ~= "table" or v[1] ~= nil or v == require("alloy.json").null then return nil, "not a JSON object" end
  return v
end

-- The body of a single run: --body, or stdin when it is not a terminal (empty: none, false).
local function single_body(ctx)
  local failure = require "alloy.failure"
  local text, where = ctx.args.body, "--body"
  if text == nil then
    if ctx.out:isatty(io.stdin) then return false end
    text, where = io.stdin:read("*a") or "", "stdin"
    if text:match("^%s*$") then return false end
  elseif text == "-" or text:sub(1, 1) == "@" then
    local path = text == "-" and "-" or text:sub(2)
    local err
    text, err = read_all(path)
    if not text then
      return nil, failure.usage("cannot read the body: " .. tostring(err), "--body @<file> names a readable file")
    end
    where = path == "-" and "stdin" or path
  end
  local v, err = json_object(text)
  if not v then
    return nil, failure.usage(("the body (%s) is not a JSON object: %s"):format(where, err),
      [[--body '{"name":"value"}' (or @file, or - for stdin)]])
  end
  return v
end

local function names(missing)
  local out = {}
  for i, p in ipairs(missing) do out[i] = p.where .. " " .. p.name end
  return table.concat(out, ", ")
end

local function missing_failure(missing, connector, id)
  local failure, ids = require "alloy.failure", require "alloy.ids"
  local how = {}
  for _, p in ipairs(missing) do
    local name = ids.word(p.name)
    how[#how + 1] = not name and ("the %s parameter named above"):format(p.where)
      or p.where == "body" and ('a body with "%s"'):format(name) or ("--%s %s=…"):format(p.where, name)
  end
  return failure.suggest(failure.usage(("missing required parameter%s: %s (nothing was sent)"):format(
    #missing == 1 and "" or "s", names(missing)), "pass " .. table.concat(how, ", ")), "all of them",
    "action", connector, id)
end

-- The execute request body of one run.
local function request(credential, input, body)
  return { credentialId = credential, requestBody = body, queryParameters = input.query, pathParams = input.path,
           additionalHeaders = input.header }
end

local function error_of(msg, code, res)
  local null = require("alloy.json").null
  return { message = msg, code = code or null, status = type(res) == "table" and res.status or null }
end

-- The connector's answer as JSON text: as it was sent when it was JSON (its numbers intact),
-- else the value.
local function result_json(value, res)
  local json = require "alloy.json"
  if type(res) == "table" and res.json ~= nil and type(res.body) == "string" then return json.as_sent(res.body) end
  return json.encode(value == nil and json.null or value)
end

-- One output line of --each; `text` is the result's or the error's JSON text.
local function line_json(n, ok, text)
  return ('{"line":%d,"ok":%s,"%s":%s}\n'):format(n, ok and "true" or "false", ok and "result" or "error", text)
end

-- --each: every line accounted for, results printed in line order.
local function run_each(ctx, run)
  local failure, json, actions = require "alloy.failure", require "alloy.json", require "alloy.actions"
  local out = ctx.out
  local text, rerr = read_all(ctx.args.each)
  if not text then
    return nil, failure.usage("cannot read --each: " .. tostring(rerr), "--each names a file of JSON lines, or -")
  end

  -- done[n]: the output line of input line n, until printed; pending[n]: sent, no result yet
  local done, pending, blank, lines, failed = {}, {}, 0, 0, 0
  local requests, line_of = {}, {}
  local function fail_line(ln, msg, code, res)
    failed = failed + 1
    done[ln] = line_json(ln, false, json.encode(error_of(msg, code, res)))
  end
  text = text:gsub("\r\n", "\n")
  if text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*$") then
      blank = blank + 1
    else
      lines = lines + 1
      local v, err = json_object(line)
      local missing = v and actions.missing(run.params, { body = v }, { body = true })
      if not v then
        fail_line(n, (err == "not a JSON object" and err or ("not JSON: " .. err)), "INVALID_JSON")
      elseif #missing > 0 then
        fail_line(n, "missing required parameter" .. (#missing == 1 and "" or "s") .. ": " .. names(missing)
          .. " (not sent)", "MISSING_PARAMETER")
      else
        requests[#requests + 1] = { op = "execute_action",
          args = { run.connector, run.id, request(run.credential, run.input, v), run.options } }
        line_of[#requests] = n
        pending[n] = true
      end
    end
  end

  local next_out, finished = 1, 0
  local function flush()
    while next_out <= n and not pending[next_out] do
      if done[next_out] then out:out(done[next_out]); done[next_out] = nil end
      next_out = next_out + 1
    end
  end
  flush()
  ctx:client():batch(requests, { concurrency = run.concurrency, on_result = function(i, r)
    local ln = line_of[i]
    if r.ok then
      done[ln] = line_json(ln, true, result_json(r.value, r))
    else
      fail_line(ln, r.error, r.code, r.res)
    end
    pending[ln] = nil
    finished = finished + 1
    flush()
    out:status(("%d/%d executed, %d failed"):format(finished, #requests, failed))
  end })
  out:say("%d line%s: %d succeeded, %d failed%s", lines, lines == 1 and "" or "s", lines - failed, failed,
    blank > 0 and (", %d blank skipped"):format(blank) or "")
  if failed > 0 then
    return nil, failure.new(("%d of %d lines failed"):format(failed, lines),
      [[the failed lines are on stdout with "ok":false and their error]])
  end
  return 0
end

function M.run(ctx)
  local failure, ids, actions = require "alloy.failure", require "alloy.ids", require "alloy.actions"
  local args, out = ctx.args, ctx.out
  local connector, id = require("alloy.cmd.actions").checked(ctx, true)
  if not connector then return nil, id end
  if args.each and args.body then
    return nil, failure.usage("--each and --body do not go together", "--each reads one body per line")
  end
  if args.concurrency and not args.each then
    return nil, failure.usage("--concurrency goes with --each", "--each <file> --concurrency <n>")
  end
  local concurrency = config.DEFAULTS.execute_concurrency
  if args.concurrency then
    local cmsg
    concurrency, cmsg = require("alloy").check_option("concurrency", tonumber(args.concurrency) or args.concurrency)
    if not concurrency then return nil, failure.usage("--concurrency: " .. cmsg) end
  end
  local input = {}
  for _, flag in ipairs({ "query", "path", "header" }) do ctx:check(pairs_of(args[flag], flag, input)) end
  local cfg = ctx:config()
  local credential = cfg.connection_id
  if not credential then
    return nil, failure.suggest(failure.usage("no connection (credential) id: --credential was not given and"
      .. " CONNECTION_ID is not set", config.where_to_set(cfg, "CONNECTION_ID", "--credential <id>")),
      "the user's connections", "connections", connector)
  end
  if not ids.object_id(credential) then
    return nil, failure.usage(("%q is not a connection id (24 hex digits)"):format(require("alloy.output")
      .printable(credential)), args.credential and "check --credential"
      or ("check CONNECTION_ID (" .. cfg.source.connection_id .. ")"))
  end
  local body
  if not args.each then body = ctx:check(single_body(ctx)) or nil end

  local action = ctx:check(actions.schema(ctx:client(), connector, id))
  local params = actions.params(action)
  local missing = actions.missing(params, { query = input.query, path = input.path, body = body },
    { query = true, path = true, body = not args.each })
  if #missing > 0 then return nil, missing_failure(missing, connector, id) end

  local run = { connector = connector, id = id, credential = credential, input = input, params = params,
                concurrency = concurrency,
                options = cfg.user_id and { headers = { ["x-alloy-userid"] = cfg.user_id } } or nil }
  if args.each then return run_each(ctx, run) end
  local v, res = ctx:call("execute_action", connector, id, request(credential, input, body), run.options)
  out:out(result_json(v, res) .. "\n")
  out:say("Executed %s %s with connection %s.", connector, id, credential)
  return 0
end

return M
