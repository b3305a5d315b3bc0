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
end)

