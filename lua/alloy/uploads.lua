-- alloy.uploads: a user's files in the Connectivity API: upload one, list them. An upload is
-- the file's MD5 (read in blocks: alloy.file_md5), a presigned URL for it
-- (POST /connectors/files/upload/request {filename, mimeType, md5}), then its bytes PUT there
-- (client:put_file), unless the API says that key already holds them (type "existing"). The
-- s3Key the API names is how actions receive the file.
--
-- M.check(path)  -> info | nil, err (status 2): a regular file that can be read; a directory,
--                   FIFO, socket or device is refused before anything is read or sent
-- M.content_type(name) -> a MIME type from the name's extension, else application/octet-stream
-- M.upload(client, path, opts) -> {s3Key, type = "new" | "existing", sent = bool, md5 (base64),
--                   size, filename, content_type} | nil, err. opts: user (x-alloy-userid; else
--                   the API key's own user), filename (default: the path's last part),
--                   content_type, on_progress(stage, done, total) (stage "md5" then "put";
--                   a few times a second while a stage lasts), on_url(url) (the presigned URL:
--                   a credential, to mask in output)
-- M.list(client, user) -> { {s3Key, filename, size, lastModified}, ... } | nil, err
local failure = require "alloy.failure"

local M = {}

local TYPES = {
  txt = "text/plain", csv = "text/csv", json = "application/json", html = "text/html", htm = "text/html",
  xml = "application/xml", pdf = "application/pdf", png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg",
  gif = "image/gif", webp = "image/webp", svg = "image/svg+xml", zip = "application/zip", gz = "application/gzip",
  md = "text/markdown", doc = "application/msword", xls = "application/vnd.ms-excel",
  docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

function M.content_type(name)
  local ext = tostring(name):match("%.([%w]+)$")
  return ext and TYPES[ext:lower()] or "application/octet-stream"
end

function M.check(path)
  local alloy, output = require "alloy", require "alloy.output"
  local shown = output.printable(path)
  local info, err, errno = alloy.file_info(path, true)
  if not info then
    return nil, failure.usage(("cannot read %s: %s"):format(shown, errno == "ENOENT" and "no such file"
      or output.printable(err)), "name a regular file you can read")
  end
  if info.type ~= "file" then
    return nil, failure.usage(("%s is a %s, not a regular file: nothing was sent"):format(shown, info.type),
      "name a regular file (a FIFO or a device has no size or MD5 to announce)")
  end
  local f, oerr = io.open(path, "rb")
  if not f then
    return nil, failure.usage(("cannot read %s: %s"):format(shown, output.printable(oerr):gsub("^.-: ", "")),
      "check its permissions")
  end
  f:close()
  return info
end

-- The part of a path after its last "/".
local function base_name(path) return (tostring(path):match("([^/]*)/*$")) end

-- The API's presignedUrl object, checked: what reaches stdout and the PUT must be what it says.
local function checked_answer(body, md5)
  local p = type(body) == "table" and body.presignedUrl
  local function bad(what)
    return nil, failure.new("the API's upload answer " .. what .. " (nothing was sent)",
      "run again with --verbose to see the HTTP exchange")
  end
  if type(p) ~= "table" then return bad("has no presignedUrl object") end
  -- printed and passed on as it is: no control character, raw C1 byte or bidi mark in it
  if type(p.s3Key) ~= "string" or p.s3Key == "" or #p.s3Key > 1024 or p.s3Key:find("[%c\127]")
    or require("alloy.output").printable(p.s3Key) ~= p.s3Key then
    return bad("has no usable s3Key")
  end
  if p.md5 ~= nil and p.md5 ~= md5 then return bad("names another MD5 than the file's") end
  if p.type ~= "existing" and type(p.presignedUrl) ~= "string" then return bad("has no presignedUrl to PUT to") end
  return p
end

function M.upload(client, path, opts)
  opts = opts or {}
  local alloy = require "alloy"
  local ok, err = M.check(path)
  if not ok then return nil, err end
  local filename = opts.filename or base_name(path)
  if filename == "" or #filename > 255 or filename:find("[%c/\127]") then
    return nil, failure.usage(("%q is not a file name to store (1 to 255 characters, no / or control"
      .. " characters)"):format(require("alloy.output").printable(filename)), "--name <filename>")
  end
  local content_type = opts.content_type or M.content_type(filename)
  local progress = opts.on_progress
  local md5, msg, code = alloy.file_md5(path, progress and { on_progress = function(done, total)
    progress("md5", done, total)
  end } or nil)
  if not md5 then
    return nil, failure.api(msg, code, nil, "file_md5")
  end
  local headers = opts.user and { headers = { ["x-alloy-userid"] = opts.user } } or nil
  local body, berr = failure.call(client, "upload_request", { filename = filename, mimeType = content_type,
                                                               md5 = md5.base64 }, headers)
  if failure.is(berr) then return nil, berr end
  local answer, aerr = checked_answer(body, md5.base64)
  if not answer then return nil, aerr end
  local out = { s3Key = answer.s3Key, type = answer.type, md5 = md5.base64, size = md5.size, filename = filename,
                content_type = content_type, sent = false }
  if answer.type == "existing" then return out end
  if opts.on_url then opts.on_url(answer.presignedUrl) end
  local _, perr = failure.call(client, "put_file", answer.presignedUrl, path, { content_type = content_type,
    md5 = md5.base64, on_progress = progress and function(done, total) progress("put", done, total) end })
  if failure.is(perr) then return nil, perr end
  out.sent = true
  return out
end

function M.list(client, user)
  local body, res = failure.call(client, "list_files", user and { headers = { ["x-alloy-userid"] = user } } or nil)
  if failure.is(res) then return nil, res end
  local files = type(body) == "table" and (body.files or body.data or (body[1] and body)) or nil
  if type(files) ~= "table" then
    return nil, failure.api("BAD_RESPONSE: the file list has no files (GET /connectors/files/list)", "BAD_RESPONSE",
      res, "list_files")
  end
  local out = {}
  for _, f in ipairs(files) do
    if type(f) == "table" then out[#out + 1] = f end
  end
  return out
end

return M
