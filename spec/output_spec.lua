-- The command layer's library modules: output and scrubbing (alloy.output), the JSON printer
-- (alloy.json), tables (alloy.tables), times (alloy.timefmt), prompts (alloy.prompt), and the
-- failures (never exits) of alloy.config and alloy.cmdline.
local cmdline = require "alloy.cmdline"
local config = require "alloy.config"
local json = require "alloy.json"
local output = require "alloy.output"
local tables = require "alloy.tables"
local timefmt = require "alloy.timefmt"

-- An output whose stdout and stderr are strings.
local function capture(o)
  local bufs = { out = {}, err = {} }
  local function sink(t) return { write = function(self, ...) for _, s in ipairs({ ... }) do t[#t + 1] = s end
    return self end, flush = function() end } end
  o = o or {}
  o.stdout, o.stderr = sink(bufs.out), sink(bufs.err)
  local out = output.new(o)
  return out, function() return table.concat(bufs.out), table.concat(bufs.err) end
end

describe("alloy.json", function()
  it("encodes with sorted keys, real arrays and unescaped slashes", function()
    assert.equal('{"a":"x/y","b":[1,2],"e":[],"n":null,"o":{}}',
      json.encode({ b = { 1, 2 }, a = "x/y", e = json.array(), n = json.null, o = {} }))
    assert.equal('"back\\\\/slash"', json.encode("back\\/slash"))
  end)

  it("escapes what a terminal acts on, in what it encodes and in a server's JSON as sent", function()
    assert.equal('"a\\u007fb\\u009bc\\u202ed"', json.encode("a\127b\194\155c\226\128\174d"))
    assert.equal('{"n":12345678901234567890, "s":"\\u001b[2J"}',
      json.as_sent('{"n":12345678901234567890,\n"s":"\27[2J"} \n'))
  end)

  it("decodes to a value or nil and one line", function()
    assert.same({ a = 1 }, json.decode('{"a":1}'))
    local v, err = json.decode("{nope")
    assert.is_nil(v)
    assert.is_nil(err:find("\n"))
  end)
end)

describe("alloy.timefmt", function()
  it("formats expiry times", function()
    assert.equal("in 59m", timefmt.relative(3540))
    assert.equal("in 1h 5m", timefmt.relative(3900))
    assert.equal("30s ago", timefmt.relative(-30))
    assert.equal("1970-01-01T00:00:00Z", timefmt.iso(0))
    assert.equal("2025-02-05 15:09", timefmt.short("2025-02-05T15:09:29.551Z"))
  end)
end)

describe("alloy.output", function()
  it("scrubs controls, C1 (UTF-8 and raw bytes) and bidi marks from server text", function()
    assert.equal("a?b?c?d", output.printable("a\27b\194\155c\226\128\174d"))
    assert.equal("x?y", output.printable("x\155y")) -- a raw 0x9B is CSI on an 8-bit terminal
    assert.equal("é … ok", output.printable("é … ok")) -- UTF-8 with bytes in 0x80-0x9F stays
    assert.equal("one two", output.line("one\ntwo"))
    assert.equal("a b", output.cell("a\tb"))
    assert.equal("none", output.excerpt(nil))
    assert.equal("a number", output.excerpt(5))
  end)

  it("redacts every secret it is told of, in all it prints; narrative only unless quiet", function()
    local out, got = capture()
    out:secret("k3y-abcdefgh-123456")
    out:secret("s3cr3t", 6)
    out:out("the key k3y-abcdefgh-123456 and s3cr3t\n")
    out:say("said %s", "line\nbreak s3cr3t")
    out:warn("careful")
    local o, e = got()
    assert.equal("the key [REDACTED] and [REDACTED]\n", o)
    assert.equal("said line break [REDACTED]\nwarning: careful\n", e)
    local quiet, got2 = capture{ quiet = true }
    quiet:say("not shown")
    quiet:warn("shown")
    assert.equal("warning: shown\n", select(2, got2()))
  end)
end)

describe("alloy.tables", function()
  it("aligns for a terminal, tab-separates for programs, scrubs every cell", function()
    local rows = { { "ID", "NAME" }, { "1", "a\tb\27[2J" }, { "22", "c" } }
    assert.equal("ID  NAME\n1   a b [2J\n22  c\n", tables.columns(rows))
    assert.equal("1\ta b [2J\n22\tc\n", tables.tsv(rows))
    assert.equal(tables.tsv(rows), tables.render(rows, false))
  end)
end)

describe("failures are returned, not exits", function()
  local exit
  before_each(function() exit = stub(os, "exit") end)
  after_each(function()
    exit:revert()
    assert.stub(exit).was_not_called()
  end)

  local cmd = { options = { { "-c --connector", "<id>", "Connector id." } } }
  local row = require("alloy.commands").by_name.connections

  it("cmdline.parse: the key as an argument, an unknown option (status 2)", function()
    local args, err = cmdline.parse(cmd, { "--api-key", "whatever-secret" }, "script", row)
    assert.is_nil(args)
    assert.equal("the API key is not accepted on the command line (it would be visible in ps)", err.message)
    assert.equal(2, err.status)
    assert.is_nil(tostring(err):find("whatever-secret", 1, true))
    args, err = cmdline.parse(cmd, { "--frobnicate" }, "script", row)
    assert.is_nil(args)
    assert.equal("unknown option '--frobnicate'", err.message)
    assert.equal("run with --help for usage", err.hint)
    assert.equal(2, err.status)
    assert.equal("notion", assert(cmdline.parse(cmd, { "-c", "notion" }, "script", row)).connector)
  end)

  it("cmdline.parse: an empty command line is the declaration's defaults, without argparse", function()
    local args = cmdline.parse({ options = { { "--n", "<n>", "N.", default = "4" }, { "--f", "<f>", "F.", many = true },
      { "--flag", "A flag." } } }, {}, "script", row)
    assert.same({ n = "4", f = {} }, args)
  end)

  it("config.load and config.require: a missing --env-file, a missing key or user (status 2)", function()
    local cfg, err = config.load{ flags = { env_file = "/nonexistent/dir/x.env" } }
    assert.is_nil(cfg)
    assert.matches("^cannot read the env file: ", err.message)
    assert.equal(2, err.status)
    cfg, err = config.require({ env_path = "my.env" }, { user = true })
    assert.is_nil(cfg)
    assert.equal("ALLOY_API_KEY is not set", err.message)
    assert.matches("add ALLOY_API_KEY=... to my.env", err.hint, 1, true)
    assert.equal(2, err.status)
    cfg, err = config.require({ api_key = "k", env_path = ".env" }, { user = true })
    assert.is_nil(cfg)
    assert.matches("^no user id", err.message)
    local ok = { api_key = "k", env_path = ".env" }
    assert.equal(ok, config.require(ok))
  end)

  it("config.client: alloy.new refusing the options (status 2)", function()
    local client, err = config.client({ api_key = "short", timeout = 1 })
    assert.is_nil(client)
    assert.matches("^cannot create the Alloy client: alloy%.new: api_key must be", err.message)
    assert.equal(2, err.status)
  end)

  it("prompt:ask: end of input (status 2)", function()
    local stdin = io.stdin
    io.stdin = assert(io.open("/dev/null", "rb")) -- luacheck: ignore 122
    local out = capture()
    local answer, err = require("alloy.prompt").new(out):ask("Connector id: ", "connector id")
    io.stdin:close()
    io.stdin = stdin -- luacheck: ignore 122
    assert.is_nil(answer)
    assert.equal("no connector id given (end of input)", err.message)
    assert.equal("answer the prompt, or pass it as a flag (see --help)", err.hint)
    assert.equal(2, err.status)
  end)
end)
