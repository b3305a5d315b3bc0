-- alloy files: the user's files in the Connectivity API (GET /connectors/files/list): s3Key,
-- name, size and when it was last modified.
local M = {
  summary = "the user's uploaded files (s3Key, name, size, modified)",
  description = "List the user's files (or, without a user, the API key's own; GET /connectors/files/list):"
    .. " s3Key, file name, size in bytes and last modified, one per line on stdout (aligned under a header on a"
    .. " terminal, tab-separated rows when piped).",
  user = true,
  examples = {
    { "-u ada" },
    { "--json | jq -r '.files[].s3Key'" },
  },
}

local HEADER = { "S3KEY", "NAME", "SIZE", "MODIFIED" }

function M.run(ctx)
  local json, timefmt, text = require "alloy.json", require "alloy.timefmt", require("alloy.tables").text
  local out = ctx.out
  local cfg = ctx:config()
  local list = ctx:check(require("alloy.uploads").list(ctx:client(), cfg.user_id))
  if ctx.args.json then
    out:out(json.encode({ userId = cfg.user_id or json.null, count = #list, files = json.array(list) }) .. "\n")
  elseif #list > 0 then
    local rows = { HEADER }
    for _, f in ipairs(list) do
      rows[#rows + 1] = { text(f.s3Key), text(f.filename), text(f.size), timefmt.short(text(f.lastModified)) }
    end
    ctx:print_table(rows)
  end
  out:say("%d file%s of %s", #list, #list == 1 and "" or "s", cfg.user_id and ("user " .. cfg.user_id)
    or "the API key's own user")
  if #list == 0 then out:say("Upload one: %s", ctx:command("upload", "<file>")) end
  return 0
end

return M
