-- HS256 JWTs for GET /users/{id}/token, signed with libcrypto's HMAC via FFI.
-- luacheck: globals ngx
local ffi = require "ffi"
local util = require "sandbox.util"

local M = {}

pcall(ffi.cdef, [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
]])

-- nginx itself links libcrypto, so its symbols are usually global already.
local function load_crypto()
  local ok = pcall(function() return ffi.C.HMAC end)
  if ok then return ffi.C end
  for _, name in ipairs { "libcrypto.so.3", "libcrypto.so" } do
    local lib_ok, lib = pcall(ffi.load, name)
    if lib_ok then return lib end
  end
  error("sandbox: libcrypto not found for HMAC-SHA256")
end
local crypto = load_crypto()

function M.hmac_sha256(key, data)
  local out = ffi.new("unsigned char[32]")
  local len = ffi.new("unsigned int[1]")
  local r = crypto.HMAC(crypto.EVP_sha256(), key, #key, data, #data, out, len)
  assert(r ~= nil, "HMAC failed")
  return ffi.string(out, len[0])
end

function M.b64url(s)
  return (ngx.encode_base64(s, true):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

function M.sign(claims, secret)
  local head = M.b64url(util.encode { alg = "HS256", typ = "JWT" })
  local body = M.b64url(util.encode(claims))
  local input = head .. "." .. body
  return input .. "." .. M.b64url(M.hmac_sha256(secret, input))
end

return M
