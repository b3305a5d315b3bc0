-- alloy trigger: trigger a custom event for a user (POST /run/event): every workflow of theirs
-- that listens to it runs; --each triggers it once per line of JSON data, as a batch.
local config = require "alloy.config"

local M = {
  summary = "trigger a custom event for a user, once or --each line of data",
  description = "Trigger a custom event for the user: each of their workflows that listens to it runs (POST"
    .. " /run/event). The API's answer is printed on stdout as JSON; the event's runs are in {cmd:logs}.",
  user = true,
  arguments = { { "event", "The custom event's name, as {cmd:events} lists it (quote a name with blanks)." } },
  options = {
    { "-d --data", "<json>", "The event's data: a JSON object, @file, or - for stdin (default {})." },
    { "--each", "<file>", "Trigger once per line of this file of JSON objects (- for stdin)." },
    { "--concurrency", "<n>", ("Triggers in flight with --each (default %d)."):format(
      config.DEFAULTS.execute_concurrency) },
    { "--unordered", "With --each, print each result as it finishes, not in line order." },
  },
  examples = {
    { [['Order Created' --data '{"orderId":"1001","customerEmail":"ada@example.com"}']] },
    { "'Order Created' --data @order.json -u ada" },
    { "'Order Created' --each orders.jsonl --concurrency 8" },
  },
  notes = [[
The data is --data JSON, --data @file, --data - (stdin), or stdin when it is not a terminal; none
is {}. With --each, each line of FILE (- for stdin) is one trigger's data, read as the triggers
go: one result line per input line on stdout, in line order ({"line":n,"ok":true,"result":...}
or {"line":n,"ok":false,"error":{...}}; --unordered: as they finish), a summary on stderr, exit 1
when any line failed; Ctrl-C reports every line read and exits 130. A trigger is not retried
automatically, except when the connection was refused or the API answered 429 with Retry-After:
its workflows may have run.]],
}

function M.run(ctx)
  local embedded, each = require "alloy.embedded", require "alloy.each"
  local args, out = ctx.args, ctx.out
  local event = ctx:check(embedded.check_event(args.event))
  local concurrency = ctx:check(each.options(args, "data", config.DEFAULTS.execute_concurrency))
  local data
  if not args.each then data = ctx:check(require("alloy.input").object(args.data, "--data", "the data")) or {} end
  local cfg = ctx:config{ user = true }
  local logs = ctx:command("logs", "--since", "5m")
  if args.each then
    local function build(line)
      local v, msg, code = each.object(line)
      if not v then return nil, msg, code end
      return { op = "run_event", args = { { event = event, userId = cfg.user_id, data = v } } }
    end
    local ok, err = each.print(out, ctx:client(), args.each, build, { concurrency = concurrency, verb = "triggered",
      unordered = args.unordered, rerun = function(from) return each.rerun_line(ctx, "trigger", { event }, from) end })
    out:say("Their runs: %s", logs)
    return ok, err
  end
  local v, res = ctx:check(embedded.trigger(ctx:client(), event, cfg.user_id, data))
  out:out(each.as_sent(v, res) .. "\n")
  out:say("Triggered %q for user %s. Its runs: %s", event, cfg.user_id, logs)
  return 0
end

return M
