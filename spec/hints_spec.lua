-- alloy.hints: advice per failure code, checked against every code alloy.so can produce.
local hints = require "alloy.hints"
local alloy = require "alloy"

describe("alloy.hints", function()
  it("maps failure codes to advice that names what to check", function()
    assert.matches("ALLOY_API_KEY", hints.for_failure("HTTP_401", "HTTP_401: Invalid key"))
    assert.matches("ALLOY_USER_ID", hints.for_failure("HTTP_404", "HTTP_404: User not found"))
    assert.matches("24%-hex ObjectIds", hints.for_failure("HTTP_400", "HTTP_400: userId must be a valid ID (POST /x)"))
    assert.matches("connectivity", hints.for_failure("COULDNT_CONNECT", "x"))
    assert.matches("proxy", hints.for_failure("COULDNT_RESOLVE_HOST", "x"))
    assert.matches("ALLOY_TIMEOUT", hints.for_failure("OPERATION_TIMEDOUT", "x"))
    assert.matches("CA bundle", hints.for_failure("SSL_CACERT", "x"))
    assert.matches("%-%-probe", hints.for_failure("JSON_DECODE", "x"))
    assert.matches("%-%-probe", hints.for_failure("BAD_RESPONSE", "x"))
    assert.matches("retry later", hints.for_failure("HTTP_500", "x"))
    assert.matches('"notion"', hints.for_failure("HTTP_404", "x", { connector = "notion" }))
    assert.equal(2, hints.exit_code("INVALID_ARGUMENT"))
    assert.equal(1, hints.exit_code("HTTP_401"))
  end)

  it("explains every code alloy.so can produce, or lists it as deliberately generic (not both)", function()
    local n = 0
    for code in pairs(alloy.codes) do
      n = n + 1
      local specific, generic = hints.BY_CODE[code] ~= nil, hints.GENERIC[code] == true
      assert.is_true(specific ~= generic, code .. (specific and " is both specific and generic" or " has no hint"))
    end
    assert.is_true(n > 10)
  end)

  it("mentions only codes alloy.so can produce", function()
    local mentioned = {}
    for code in pairs(hints.BY_CODE) do mentioned[#mentioned + 1] = code end
    for code in pairs(hints.GENERIC) do mentioned[#mentioned + 1] = code end
    for _, code in ipairs(mentioned) do
      local family = code:match("^HTTP_%d+$") and "HTTP_<status>" or code:match("^CURL_%d+$") and "CURL_<n>"
      assert.is_string(alloy.codes[family or code], code .. " is not in alloy.codes")
    end
    assert.is_nil(hints.BY_CODE.PEER_FAILED_VERIFICATION)
  end)

  it("gives a family's code without an entry of its own the family's hint, else the generic one", function()
    assert.matches("retry later", hints.for_failure("HTTP_503", "x"))
    assert.matches("unexpected HTTP status", hints.for_failure("HTTP_418", "x"))
    assert.equal("run again with --verbose to see the HTTP exchange", hints.for_failure("CURL_99", "x"))
    assert.equal("run again with --verbose to see the HTTP exchange", hints.for_failure(nil, nil))
    assert.matches("CA bundle", hints.for_failure("SSL_CACERT_BADFILE", "x"))
    assert.matches("proxy", hints.for_failure("PROXY", "x"))
  end)

  it("tells a host name mismatch from an untrusted CA, and names what to fix for each", function()
    local name_msgs = {
      "SSL_CACERT: SSL: no alternative certificate subject name matches target host name 'x.test' (GET /users)",
      "SSL_CACERT: SSL: certificate subject name 'a.test' does not match target host name 'x.test' (GET /users)",
    }
    for _, msg in ipairs(name_msgs) do
      local h = hints.for_failure("SSL_CACERT", msg, { url = "https://x.test" })
      assert.matches("not for this host name", h, 1, true)
      assert.matches("ALLOY_BASE_URL / ALLOY_EMBEDDED_URL (https://x.test)", h, 1, true)
      assert.is_nil(h:find("point ALLOY_CA_FILE", 1, true))
    end
    local h = hints.for_failure("SSL_CACERT",
      "SSL_CACERT: SSL certificate problem: unable to get local issuer certificate")
    assert.matches("point ALLOY_CA_FILE", h, 1, true)
  end)

  it("says what an id may hold", function()
    assert.matches("without control characters, '/', '?' or '#'", hints.for_failure("INVALID_ARGUMENT", "x"), 1, true)
  end)

  it("explains a redirect and a header over libcurl's cap", function()
    assert.matches("redirect, which is not followed", hints.for_failure("HTTP_302", "x"), 1, true)
    assert.matches("redirect, which is not followed", hints.for_failure("HTTP_308", "x"), 1, true)
    assert.matches("did not answer like the Alloy API", hints.for_failure("HEADERS_TOO_LARGE", "x"), 1, true)
  end)

  describe("from a script, against a TLS sandbox", function()
    local Sandbox = require "sandbox"
    local run = require "run"
    local sb, uid
    setup(function()
      sb = Sandbox.start { tls = true }
      uid = sb:create_user { username = "tls-hint" }
    end)
    teardown(function() if sb then sb:stop() end end)

    it("a wrong host name gets the host name hint, an unknown CA the CA-file hint", function()
      local port = sb.url:match(":(%d+)$")
      local tried = {}
      for _, host in ipairs(run.other_loopback_names()) do
        local url = "https://" .. host .. ":" .. port
        local r = run.script("get_jwt_token", {}, { env = run.env(sb, uid, { ALLOY_EMBEDDED_URL = url }) })
        tried[#tried + 1] = host .. ": " .. r.stderr
        if r.stderr:find("SSL_", 1, true) then
          assert.equals(1, r.code)
          assert.matches("^error: SSL_CACERT: [^\n]*name[^\n]*\n"
            .. "hint: TLS failed: the server's certificate is not for this host name", r.stderr)
          assert.is_nil(r.stderr:find("ALLOY_CA_FILE", 1, true), r.stderr)
          local other = run.script("get_jwt_token", {}, { env = run.env(sb, uid, { ALLOY_CA_FILE = false }) })
          assert.equals(1, other.code)
          assert.matches("\nhint: TLS failed: point ALLOY_CA_FILE", other.stderr)
          return
        end
      end
      error("no other name reaches 127.0.0.1 here:\n" .. table.concat(tried, "\n"))
    end)
  end)
end)
