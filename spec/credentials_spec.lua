-- alloy.credentials: normalised credential lists, over real HTTP against the sandbox.
local credentials = require "alloy.credentials"

describe("alloy.credentials", function()
  local item = { credentialId = "66fb066c3793749b64c214bc", type = "notion-oauth2", name = "N",
                 createdAt = "2024-09-30T20:13:32.491Z", updatedAt = "2024-09-30T20:13:32.522Z" }
  it("normalises the three documented list shapes", function()
    for _, shape in ipairs({ { data = { item } }, { credentials = { item } }, { item } }) do
      assert.same({ item }, credentials.normalise(shape))
    end
    assert.same({}, credentials.normalise({ data = {} }))
    assert.same({ { credentialId = "x", type = "slack" } },
      credentials.normalise({ { id = "x", type = "slack", extra = 1 } }))
  end)

  it("filters by connector and finds what was added", function()
    local a = { credentialId = "a", type = "notion-oauth2", createdAt = "2024-01-01" }
    local b = { credentialId = "b", type = "slack-oauth2", createdAt = "2024-02-01" }
    local c = { credentialId = "c", type = "notion", createdAt = "2024-03-01" }
    local n = { credentialId = "n", type = "notionx", createdAt = "2024-03-01" }
    assert.same({ a, c }, credentials.for_connector({ a, b, c, n }, "notion"))
    assert.same({ b, c }, credentials.added({ a }, { a, b, c }))
    assert.equal(c, credentials.newest({ a, b, c }))
    assert.equal(b, credentials.find({ a, b }, "b"))
  end)
end)
