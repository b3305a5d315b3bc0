-- get_jwt_token.lua with a token whose exp claim is absurd or past: the token is still
-- printed (it is what the server gave), the expiry is said to be unknown or past on stderr,
-- --json stays one valid document; never an internal error.
local Sandbox = require "sandbox"
local run = require "run"
local cjson = require "cjson"
local mime = require "mime"

local function b64url(s)
  return (mime.b64(s):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

-- An unsigned-looking JWT whose payload is the given JSON text (the client never checks
-- the signature).
local function token_with(payload_json)
  return b64url('{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(payload_json) .. "." .. b64url("signature")
end

describe("get_jwt_token.lua and a token's exp claim #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir
  Sandbox.per_test_user("tess", function(s, u) sb, uid = s, u end)
  before_each(function() dir = run.tmpdir() end)
  after_each(function() run.rmdir(dir) end)

  local function jwt(args)
    return run.script("get_jwt_token", args, { env = run.env(sb, uid), cwd = dir })
  end

  local function serve(token)
    sb:fault { method = "GET", path = "/token$", status = 200, body = '{"token":"' .. token .. '"}' }
  end

  for _, exp in ipairs { "1e300", "NaN", "Infinity", "-Infinity", "-1", "1e17", '"1700000000"', "null", "[]",
                         "253402300800" } do
    it(("exp %s: the token is printed, the expiry is unknown, exit 0"):format(exp), function()
      local token = token_with('{"userId":"' .. uid .. '","exp":' .. exp .. '}')
      serve(token)
      local r = jwt({})
      assert.equal(0, r.code, r.stderr)
      assert.equal(token .. "\n", r.stdout)
      assert.matches("\nexpires:     unknown %(", r.stderr)
      assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
      assert.is_nil(r.stderr:lower():find("inf", 1, true), r.stderr)
      assert.is_nil(r.stderr:lower():find("nan", 1, true), r.stderr)

      serve(token)
      r = jwt({ "--json" })
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.equal(token, doc.token)
      assert.equal(cjson.null, doc.expiresAt)
    end)
  end

  it("an already expired token is printed, with a warning on stderr", function()
    sb:set { token_ttl = -3600 }
    local r = jwt({})
    assert.equal(0, r.code, r.stderr)
    assert.matches("^[%w_%-]+%.[%w_%-]+%.[%w_%-]+\n$", r.stdout)
    assert.matches("\nexpires:     %d%d%d%d%-%d%d%-%d%dT[%d:]+Z %(1h ago%)\n", r.stderr)
    assert.matches("\nwarning: the token has already expired %(", r.stderr)
    -- the warning is shown under --quiet too; --json stays one document
    r = jwt({ "--quiet", "--json" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^warning: the token has already expired", r.stderr)
    assert.is_string(cjson.decode(r.stdout).expiresAt)
  end)

  it("a token that has not expired carries no warning", function()
    local r = jwt({})
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("warning", 1, true), r.stderr)
    assert.matches("\nexpires:     [^\n]+ %(in ", r.stderr)
  end)
end)
