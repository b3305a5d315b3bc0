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

describe("alloy.cli failures are returned, not exits", function()
  local exit
  before_each(function() exit = stub(os, "exit") end)
  after_each(function()
    exit:revert()
    assert.stub(exit).was_not_called()
  end)

  local function parser()
    local p = cli.parser("x.lua", "A test parser.")
    p:option("-c --connector", "Connector id."):argname("<id>")
    return p
  end

  it("parse: the key as an argument, an unknown option (status 2)", function()
    local args, err = cli.parse(parser(), { "--api-key", "whatever-secret" })
    assert.is_nil(args)
    assert.equal("the API key is not accepted on the command line (it would be visible in ps)", err.message)
    assert.equal(2, err.status)
    assert.is_nil(tostring(err):find("whatever-secret", 1, true))
    args, err = cli.parse(parser(), { "--frobnicate" })
    assert.is_nil(args)
    assert.equal("unknown option '--frobnicate'", err.message)
    assert.equal("run with --help for usage", err.hint)
    assert.equal(2, err.status)
    assert.equal("notion", assert(cli.parse(parser(), { "-c", "notion" })).connector)
  end)

  it("config and require_config: a missing --env-file, a missing key or user (status 2)", function()
    local cfg, err = cli.config({ env_file = "/nonexistent/dir/x.env" })
    assert.is_nil(cfg)
    assert.matches("^cannot read the env file: ", err.message)
    assert.equal(2, err.status)
    cfg, err = cli.require_config({ env_path = "my.env" }, true)
    assert.is_nil(cfg)
    assert.equal("ALLOY_API_KEY is not set", err.message)
    assert.matches("add ALLOY_API_KEY=... to my.env", err.hint, 1, true)
    assert.equal(2, err.status)
    cfg, err = cli.require_config({ api_key = "k", env_path = ".env" }, true)
    assert.is_nil(cfg)
    assert.matches("^no user id", err.message)
    local ok = { api_key = "k", env_path = ".env" }
    assert.equal(ok, cli.require_config(ok, false))
  end)

  it("client: alloy.new refusing the options (status 2)", function()
    local client, err = cli.client({ api_key = "short", timeout = 1 })
    assert.is_nil(client)
    assert.matches("^cannot create the Alloy client: alloy%.new: api_key must be", err.message)
    assert.equal(2, err.status)
  end)

  it("ask: end of input (status 2)", function()
    local stdin = io.stdin
    io.stdin = assert(io.open("/dev/null", "rb")) -- luacheck: ignore 122
    local answer, err = cli.ask("Connector id: ", "connector id")
    io.stdin:close()
    io.stdin = stdin -- luacheck: ignore 122
    assert.is_nil(answer)
    assert.equal("no connector id given (end of input)", err.message)
    assert.equal("answer the prompt, or pass it as a flag (see --help)", err.hint)
    assert.equal(2, err.status)
  end)
end)
