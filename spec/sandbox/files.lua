-- The Connectivity API's files: presigned upload requests, the user's file list, and a
-- stand-in for the storage host the presigned URL points at (the S3 listener). Files belong to
-- the acting user (x-alloy-userid, else the API key's own user); s3Key is "<userId>_<filename>".
-- README.md says which of this Alloy documents and what the sandbox infers.
-- luacheck: globals ngx
local util = require "sandbox.util"
local state = require "sandbox.state"
local api = require "sandbox.api"

local M = {}

local BUCKET = "alloy-user-files"
local EXPIRES = 3600 -- "Presigned URLs expire after 1 hour" (the files guide)

-- The API key's own user: files uploaded without x-alloy-userid belong to it.
local KEY_USER = "651eb6e11d156e0d7a42c59d"

-- An MD5 in hex (32 digits) or base64 (24 characters) -> its base64 form, or nil.
local function md5_base64(s)
  if type(s) ~= "string" then return nil end
  if s:match("^%x+$") and #s == 32 then
    return ngx.encode_base64((s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)))
  end
  if #s == 24 and s:match("^[%w+/]+==$") then
    local raw = ngx.decode_base64(s)
    if raw and #raw == 16 then return ngx.encode_base64(raw) end
  end
end

local function owner_of(req)
  local u = api.acting_user(req)
  if u == nil then return nil end
  return u and u.userId or KEY_USER
end

-- POST /connectors/files/upload/request {filename, mimeType, md5}
function M.upload_request(req)
  local owner = owner_of(req)
  if not owner then return end
  local body = api.json_body(req)
  if not body then return end
  for _, name in ipairs { "filename", "mimeType", "md5" } do
    if body[name] == nil then return util.invalid(name, "is required") end
    if type(body[name]) ~= "string" or body[name] == "" or body[name]:find("%c") then
      return util.invalid(name, "must be a non-empty string")
    end
  end
  local md5 = md5_base64(body.md5)
  if not md5 then return util.invalid("md5", "must be an MD5 hash in hex or base64") end
  local key = owner .. "_" .. body.filename
  local have = state.objects[key]
  local signature = util.opaque_token()
  state.uploads[signature] = { s3Key = key, md5 = md5, mimeType = body.mimeType, owner = owner,
                               filename = body.filename, expires = ngx.now() + EXPIRES }
  local url = ngx.var.sandbox_s3_url .. "/" .. BUCKET .. "/" .. util.urlencode(key)
    .. "?X-Amz-Expires=" .. EXPIRES .. "&X-Amz-Signature=" .. signature
  return util.json(200, { presignedUrl = {
    md5 = md5, presignedUrl = url, s3Key = key,
    type = (have and have.md5 == md5) and "existing" or "new",
  } })
end

-- GET /connectors/files/list: the acting user's files, in upload order.
function M.list(req)
  local owner = owner_of(req)
  if not owner then return end
  local out = util.list()
  for _, key in ipairs(state.objects) do
    local o = state.objects[key]
    if o.owner == owner then
      out[#out + 1] = { s3Key = key, filename = o.filename, size = o.size, lastModified = o.lastModified }
    end
  end
  return util.json(200, { files = out })
end

-- S3's error document.
local function s3_error(status, code, message)
  local body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' .. code .. "</Code><Message>"
    .. message .. "</Message></Error>"
  ngx.status = status
  ngx.header["Content-Type"] = "application/xml"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(status)
end

-- What a presigned PUT must not carry: it goes to a host that is not Alloy.
local function alloy_header(h)
  for name in pairs(h) do
    if name == "x-api-version" or name:sub(1, 8) == "x-alloy-" then return name end
  end
end

-- PUT /alloy-user-files/<s3Key>?...&X-Amz-Signature=<sig>: the bytes of an upload requested
-- through the API. Content-Type and Content-MD5 must be the requested ones, and the body must
-- have that MD5.
function M.s3_put(method, raw_path, h, body)
  if method ~= "PUT" then
    return s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
  end
  if h.authorization then
    return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
      .. "parameter, Signature query string parameter or the Authorization header should be specified")
  end
  local extra = alloy_header(h)
  if extra then
    return s3_error(400, "InvalidArgument", "Unexpected header " .. extra
      .. ": an Alloy header sent to the storage host")
  end
  local signature = ngx.req.get_uri_args()["X-Amz-Signature"]
  local up = type(signature) == "string" and state.uploads[signature]
  local prefix = "/" .. BUCKET .. "/"
  local key = raw_path:sub(1, #prefix) == prefix and raw_path:sub(#prefix + 1) or ""
  key = key:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
  if not up or up.s3Key ~= key then
    return s3_error(403, "AccessDenied", "Invalid or missing signature for this key")
  end
  if ngx.now() > up.expires then return s3_error(403, "AccessDenied", "Request has expired") end
  local sent_md5 = h["content-md5"]
  if sent_md5 == nil then
    return s3_error(403, "SignatureDoesNotMatch", "Content-MD5 is part of this URL's signature and was not sent")
  end
  if not md5_base64(sent_md5) or sent_md5:match("^%x+$") then
    return s3_error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
  end
  if sent_md5 ~= up.md5 then
    return s3_error(403, "SignatureDoesNotMatch", "Content-MD5 differs from the one this URL was issued for")
  end
  if h["content-type"] ~= up.mimeType then
    return s3_error(403, "SignatureDoesNotMatch", "Content-Type differs from the mimeType this URL was issued for")
  end
  body = body or ""
  if ngx.encode_base64(ngx.md5_bin(body)) ~= sent_md5 then
    return s3_error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
  end
  if not state.objects[key] then state.objects[#state.objects + 1] = key end
  state.objects[key] = { owner = up.owner, filename = up.filename, size = #body, md5 = sent_md5,
                         contentType = up.mimeType, lastModified = util.iso_now() }
  ngx.status = 200
  ngx.header["ETag"] = '"' .. ngx.md5(body) .. '"'
  ngx.header["Content-Length"] = 0
  ngx.send_headers()
  return ngx.exit(ngx.HTTP_OK)
end

return M
