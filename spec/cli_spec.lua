-- alloy.cli: output helpers, and failures returned (not exits) from the library functions.
local cli = require "alloy.cli"

describe("alloy.cli output helpers", function()
  it("encodes JSON with sorted keys, real arrays and unescaped slashes", function()
    assert.equal('{"a":"x/y","b":[1,2],"e":[],"n":null,"o":{}}',
      cli.json({ b = { 1, 2 }, a = "x/y", e = cli.array(), n = cli.null, o = {} }))
    assert.equal('"back\\\\/slash"', cli.json("back\\/slash"))
  end)

  it("formats expiry times", function()
    assert.equal("in 59m", cli.relative(3540))
    assert.equal("in 1h 5m", cli.relative(3900))
    assert.equal("30s ago", cli.relative(-30))
    assert.equal("1970-01-01T00:00:00Z", cli.iso_time(0))
  end)
end)
