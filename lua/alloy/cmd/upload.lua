-- alloy upload: one file into the user's files (Connectivity API): its MD5 read in blocks, a
-- presigned URL for it, its bytes PUT there unless the API already holds them; the s3Key, which
-- is how actions receive the file, on stdout.
local M = {
  summary = "upload a file to the user's files; prints its s3Key",
  description = "Upload a file to the user's files (or, without a user, the API key's own): its MD5 is computed"
    .. " as it is read (a file of any size), the API gives a presigned URL for it (POST"
    .. " /connectors/files/upload/request), and the bytes go there with that MD5 (a PUT to the storage host, which"
    .. " gets no Alloy header and no key). A file the API already holds with that MD5 is not sent again. The"
    .. " s3Key is printed on stdout: actions take the file by it.",
  user = true,
  arguments = { { "file", "The file: a regular file you can read (not a directory, FIFO or device)." } },
  options = {
    { "--type", "<mime>", "Its Content-Type (default: from the name's extension, else application/octet-stream)." },
    { "--name", "<filename>", "The name to store it under (default: the file's own name)." },
  },
  examples = {
    { "report.pdf -u ada" },
    { "data.bin --type application/octet-stream --name export-2025-10.bin" },
  },
  notes = [[
Nothing is reported uploaded that the storage host did not accept whole. A file that changes
after its MD5 was read is stopped before its last byte (FILE_CHANGED, exit 1): run it again once
the file is complete. A progress line shows on a terminal for files of 4 MiB or more.]],
}

local BIG = 4 * 1024 * 1024

local function mib(n) return ("%.1f MiB"):format(n / 1048576) end

function M.run(ctx)
  local failure, uploads, json = require "alloy.failure", require "alloy.uploads", require "alloy.json"
  local args, out = ctx.args, ctx.out
  if not args.file then return nil, failure.usage("no file given", "upload <file>") end
  local info = ctx:check(uploads.check(args.file))
  if args.type and (args.type == "" or #args.type > 150 or args.type:find("[%c\127]")) then
    return nil, failure.usage("--type must be a MIME type on one line, such as text/csv")
  end
  local cfg = ctx:config()
  local shown = require("alloy.output").line(args.name or args.file)
  local progress
  if info.size >= BIG then
    progress = function(stage, done, total)
      out:status(("%s %s: %s of %s (%d%%)"):format(stage == "md5" and "reading" or "uploading", shown, mib(done),
        mib(total), total > 0 and math.floor(done * 100 / total) or 100))
    end
  end
  local r = ctx:check(uploads.upload(ctx:client(), args.file, { user = cfg.user_id, filename = args.name,
    content_type = args.type, on_progress = progress, on_url = function(url)
      -- the URL's query is a credential: never printed, whatever prints it
      for value in (url:match("%?(.*)$") or ""):gmatch("=([^&]+)") do out:secret(value) end
    end }))
  if args.json then
    out:out(json.encode({ s3Key = r.s3Key, type = r.type or json.null, sent = r.sent, md5 = r.md5, size = r.size,
                          filename = r.filename, contentType = r.content_type }) .. "\n")
  else
    out:out(r.s3Key .. "\n")
  end
  local owner = cfg.user_id and ("user " .. cfg.user_id) or "the API key's own user"
  if r.sent then
    out:say("Uploaded %s (%d bytes, %s, MD5 %s) for %s.", r.filename, r.size, r.content_type, r.md5, owner)
  else
    out:say("Already there: %s with MD5 %s (not sent again) for %s.", r.filename, r.md5, owner)
  end
  out:say("Its files: %s", ctx:command("files"))
  return 0
end

return M
