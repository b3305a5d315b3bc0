-- --region eu / ALLOY_REGION=eu: every call goes to the EU host, the token call and all the
-- others alike, as Alloy's Node SDK does with setRegion('eu'). No request leaves the machine:
-- the child's https_proxy is a local socket that reads the CONNECT line naming the host it
-- would reach, and closes.
local Sandbox = require "sandbox"
local run = require "run"
local socket = require "socket"

local EU = "CONNECT eu-embedded.runalloy.com:443 HTTP/1.1"

describe("--region", function()
  local sb, uid
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)

  -- The CONNECT lines a command sends through the proxy (each refused), and its result.
  local function through_proxy(script, args, extra, cwd)
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    extra.https_proxy = "http://127.0.0.1:" .. port
    extra.ALLOY_BASE_URL, extra.ALLOY_EMBEDDED_URL, extra.ALLOY_RETRIES = false, false, "0"
    local h = run.spawn(script, args, { env = run.env(sb, uid, extra), cwd = cwd })
    local lines = {}
    server:settimeout(10)
    while true do
      local conn = server:accept()
      if not conn then break end
      conn:settimeout(10)
      lines[#lines + 1] = conn:receive("*l")
      conn:close()
      server:settimeout(0.5) -- more requests come at once, or not at all
    end
    server:close()
    return lines, h:wait()
  end

  it("eu: every command's calls go to the EU host", function()
    local cred = sb:create_credential { userId = uid, connector = "slack" }.credentialId
    for _, c in ipairs({
      { "get_jwt_token", {} }, { "list_connections", {} }, { "list_connectors", {} }, { "users", { "list" } },
      { "list_actions", { "slack" } }, { "describe_action", { "slack", "chat_postMessage" } },
      { "run_action", { "slack", "chat_postMessage", "--credential", cred, "--body", "{}" } },
      { "initiate_oauth", { "notion", "--no-listen" } }, { "delete_connection", { cred, "--yes" } },
    }) do
      local lines, r = through_proxy(c[1], c[2], { ALLOY_REGION = "eu" })
      assert.equal(1, r.code, c[1] .. ": " .. r.stderr)
      assert.is_true(#lines >= 1, c[1])
      for _, l in ipairs(lines) do assert.equal(EU, l, c[1]) end
    end
  end)

  it("eu: --probe tries only the EU host's forms", function()
    local lines = through_proxy("get_jwt_token", { "--region", "eu", "--probe", "--all" }, {})
    assert.is_true(#lines > 1)
    for _, l in ipairs(lines) do assert.equal(EU, l) end
  end)

  it("us, in any case, the default: the documented hosts", function()
    local lines = through_proxy("list_connections", { "--region", "US" }, {})
    assert.same({ "CONNECT production.runalloy.com:443 HTTP/1.1" }, lines)
    lines = through_proxy("get_jwt_token", {}, {})
    assert.same({ "CONNECT embedded.runalloy.com:443 HTTP/1.1" }, lines)
  end)

  it("ALLOY_REGION=eu from .env too (flags > environment > .env)", function()
    local dir = run.tmpdir()
    run.write(dir .. "/.env", "ALLOY_REGION=eu\n")
    local lines = through_proxy("list_connectors", {}, {}, dir)
    run.rmdir(dir)
    assert.same({ EU }, lines)
  end)

  it("an explicit host wins over the region; an unknown region is exit 2", function()
    local r = run.script("get_jwt_token", { "--region", "eu" }, { env = run.env(sb, uid) })
    assert.equal(0, r.code, r.stderr)
    assert.equal(uid, run.jwt_payload(r.stdout:sub(1, -2)).userId)
    r = run.script("get_jwt_token", { "--region", "mars" }, { env = run.env(sb, uid) })
    assert.equal(2, r.code)
    assert.equal("error: ALLOY_REGION (flag --region): region must be us or eu (any case)\nhint: fix ALLOY_REGION"
      .. " where it is set (flag --region)\n", r.stderr)
  end)

  it("the Lua API: alloy.new{ region = 'eu' } points both hosts there; alloy.regions says which", function()
    local alloy = require "alloy"
    assert.same({ base_url = "https://eu-embedded.runalloy.com", embedded_url = "https://eu-embedded.runalloy.com" },
      alloy.regions.eu)
    assert.same({ base_url = "https://production.runalloy.com", embedded_url = "https://embedded.runalloy.com" },
      alloy.regions.us)
    local c = alloy.new { api_key = "key-0123456789", region = "Eu" }
    assert.equal("alloy.client (https://eu-embedded.runalloy.com)", tostring(c))
    c:close()
    assert.has_error(function() alloy.new { api_key = "key-0123456789", region = "mars" } end,
      "alloy.new: region must be us or eu (any case)")
  end)
end)
