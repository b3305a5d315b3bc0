-- get_jwt_token.lua --region eu / ALLOY_REGION=eu: the token call goes to the documented EU
-- host. No request leaves the machine: the child's https_proxy is a local socket that reads
-- the CONNECT line naming the host, and closes.
local Sandbox = require "sandbox"
local run = require "run"
local socket = require "socket"

describe("get_jwt_token.lua --region", function()
  local sb, uid
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)

  -- The first request line the script sends through the proxy, and its result.
  local function through_proxy(args, extra, cwd)
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    server:settimeout(10)
    extra.https_proxy = "http://127.0.0.1:" .. port
    local h = run.spawn("get_jwt_token", args, { env = run.env(sb, uid, extra), cwd = cwd })
    local conn = server:accept()
    local line
    if conn then
      conn:settimeout(10)
      line = conn:receive("*l")
      conn:close()
    end
    server:close()
    return line, h:wait()
  end

  it("--region eu asks the EU host", function()
    local line, r = through_proxy({ "--region", "eu" }, { ALLOY_EMBEDDED_URL = false })
    assert.equal("CONNECT eu-embedded.runalloy.com:443 HTTP/1.1", line)
    assert.equal(1, r.code)
  end)

  it("ALLOY_REGION=eu too", function()
    local line = through_proxy({}, { ALLOY_EMBEDDED_URL = false, ALLOY_REGION = "eu" })
    assert.equal("CONNECT eu-embedded.runalloy.com:443 HTTP/1.1", line)
  end)

  it("ALLOY_REGION=eu from .env too (flags > environment > .env)", function()
    local dir = run.tmpdir()
    run.write(dir .. "/.env", "ALLOY_REGION=eu\n")
    local line = through_proxy({}, { ALLOY_EMBEDDED_URL = false }, dir)
    run.rmdir(dir)
    assert.equal("CONNECT eu-embedded.runalloy.com:443 HTTP/1.1", line)
  end)

  it("an explicit ALLOY_EMBEDDED_URL wins; an unknown region is exit 2", function()
    local r = run.script("get_jwt_token", { "--region", "eu" }, { env = run.env(sb, uid) })
    assert.equal(0, r.code, r.stderr)
    assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
    r = run.script("get_jwt_token", { "--region", "mars" }, { env = run.env(sb, uid) })
    assert.equal(2, r.code)
    assert.matches("^error: ALLOY_REGION %(flag %-%-region%): must be us or eu, not \"mars\"\n", r.stderr)
  end)
end)
