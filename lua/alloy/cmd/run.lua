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
    { "--unordered", "With --each, print each result as it finishes, not in line order." },
  },
  examples = {
    { [[slack chat_postMessage --body '{"channel":"C0123","text":"Hello"}']] },
    { "slack conversations_history --query channel=C0123 --credential 66fb066c3793749b64c214bc" },
    { "slack chat_postMessage --each messages.jsonl --concurrency 8" },
  },
  notes = [[
The body is --body JSON, --body @file, --body - (stdin), or stdin when it is not a terminal.
With --each, each line of FILE (- for stdin) is one JSON body, read as the executes go: one result
line per input line on stdout, in line order ({"line":n,"ok":true,"result":...} or
{"line":n,"ok":false,"error":{...}}; --unordered: as they finish), a summary on stderr, exit 1
when any line failed. Blank lines are skipped and counted. Ctrl-C stops reading: every line read
is reported (one in flight as "INTERRUPTED", with "sent"), the summary says how to run the rest,
exit 130.
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

-- --each: one execute per line of JSON bodies (alloy.each).
local function run_each(ctx, run)
  local actions, each = require "alloy.actions", require "alloy.each"
  local function build(line)
    local v, msg, code = each.object(line)
    if not v then return nil, msg, code end
    local missing = actions.missing(run.params, { body = v }, { body = true })
    if #missing > 0 then
      return nil, "missing required parameter" .. (#missing == 1 and "" or "s") .. ": " .. names(missing)
        .. " (not sent)", "MISSING_PARAMETER"
    end
    return { op = "execute_action",
             args = { run.connector, run.id, request(run.credential, run.input, v), run.options } }
  end
  local args = ctx.args
  local function rerun(from) -- the same run over the lines from `from` on
    local words = { run.connector, run.id }
    if args.credential then words[#words + 1], words[#words + 2] = "--credential", args.credential end
    for _, flag in ipairs({ "query", "path", "header" }) do
      for _, kv in ipairs(args[flag] or {}) do words[#words + 1], words[#words + 2] = "--" .. flag, kv end
    end
    return each.rerun_line(ctx, "run", words, from)
  end
  return each.print(ctx.out, ctx:client(), args.each, build, { concurrency = run.concurrency, verb = "executed",
    unordered = args.unordered, rerun = rerun })
end

function M.run(ctx)
  local failure, ids, actions = require "alloy.failure", require "alloy.ids", require "alloy.actions"
  local args, out = ctx.args, ctx.out
  local connector, id = require("alloy.cmd.actions").checked(ctx, true)
  if not connector then return nil, id end
  local concurrency = ctx:check(require("alloy.each").options(args, "body", config.DEFAULTS.execute_concurrency))
  local input = {}
  for _, flag in ipairs({ "query", "path", "header" }) do ctx:check(pairs_of(args[flag], flag, input)) end
  local cfg = ctx:config()
  local credential = cfg.connection_id
  if not credential then
    return nil, failure.suggest(failure.usage("no connection (credential) id: --credential was not given and"
      .. " CONNECTION_ID is not set", config.where_to_set(cfg, "CONNECTION_ID", "--credential <id>")),
      "the user's connections", "connections", connector)
  end
  local _, bad = ids.check_object_id("connection", credential, args.credential and "check --credential"
    or ("check CONNECTION_ID (" .. cfg.source.connection_id .. ")"))
  if bad then return nil, bad end
  local body
  if not args.each then body = ctx:check(require("alloy.input").object(args.body, "--body", "the body")) or nil end

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
  out:out(require("alloy.each").as_sent(v, res) .. "\n")
  out:say("Executed %s %s with connection %s.", connector, id, credential)
  return 0
end

return M
