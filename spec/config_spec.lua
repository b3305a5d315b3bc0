-- Pure-Lua helpers of the scripts: .env parsing and writing, configuration precedence,
-- hints, JSON output.  No network, no alloy.so.
local dotenv = require "alloy.dotenv"
local config = require "alloy.config"
local hints = require "alloy.hints"
local cli = require "alloy.cli"
local credentials = require "alloy.credentials"
local run = require "run"

local function getenv_from(t)
  return function(k) return t[k] end
end

describe("alloy.dotenv.parse", function()
  it("reads plain, exported, quoted and commented assignments", function()
    local vars = assert(dotenv.parse(table.concat({
      "# a comment",
      "",
      "A=1",
      "export B=two",
      "C = spaced value  ",
      "D=abc # trailing comment",
      "E=abc#not-a-comment",
      "F='single # kept $X'",
      'G="dq\\n\\t\\"x\\" \\\\ # kept" # comment',
      "H=",
      "I= # only a comment",
      "J=`backtick`",
      "   # indented comment",
    }, "\n") .. "\n", "t.env"))
    assert.same({
      A = "1", B = "two", C = "spaced value", D = "abc", E = "abc#not-a-comment",
      F = "single # kept $X", G = 'dq\n\t"x" \\ # kept', H = "", I = "", J = "backtick",
    }, vars)
  end)

  it("handles CRLF line ends and a UTF-8 BOM", function()
    local vars = assert(dotenv.parse("\239\187\191ALLOY_API_KEY=k1\r\nALLOY_USER_ID=\"u 1\"\r\n", ".env"))
    assert.same({ ALLOY_API_KEY = "k1", ALLOY_USER_ID = "u 1" }, vars)
  end)

  it("lets a later duplicate win", function()
    local vars = assert(dotenv.parse("A=1\nA=2\n", ".env"))
    assert.equal("2", vars.A)
  end)

  it("reads quoted values spanning lines", function()
    local vars = assert(dotenv.parse('A="line1\nline2"\nB=\'x\ny\'\nC=3\n', ".env"))
    assert.same({ A = "line1\nline2", B = "x\ny", C = "3" }, vars)
  end)

  it("reports a broken line as path:LINE: message", function()
    local v, err = dotenv.parse("A=1\n# ok\nthis is not an assignment\n", "/x/.env")
    assert.is_nil(v)
    assert.equal("/x/.env:3: expected KEY=VALUE", err)
    v, err = dotenv.parse("A=1\nB=\"open\nC=2\n", "e")
    assert.is_nil(v)
    assert.equal("e:2: unterminated double-quoted value for B", err)
    v, err = dotenv.parse("A='x' y\n", "e")
    assert.is_nil(v)
    assert.equal("e:1: unexpected text after the closing quote of A", err)
    v, err = dotenv.parse("A=1\n9X=2\n", "e")
    assert.is_nil(v)
    assert.equal('e:2: invalid variable name "9X"', err)
  end)
end)

describe("alloy.dotenv.set", function()
  local dir
  before_each(function() dir = run.tmpdir() end)
  after_each(function() run.rmdir(dir) end)

  it("creates the file with mode 0600", function()
    local path = dir .. "/.env"
    assert(dotenv.set(path, "CONNECTION_ID", "abc123"))
    assert.equal("CONNECTION_ID=abc123\n", run.read(path))
    assert.equal("600", dotenv.mode(path))
  end)

  it("rewrites the winning assignment in place and keeps every other byte", function()
    local path = dir .. "/.env"
    local before = "\239\187\191# my settings\r\nALLOY_API_KEY=secret\r\n\r\n"
      .. "CONNECTION_ID=old # the first one\r\nexport CONNECTION_ID=\"older\" # wins\r\nLAST=1"
    run.write(path, before, "640")
    assert(dotenv.set(path, "CONNECTION_ID", "new id"))
    assert.equal("\239\187\191# my settings\r\nALLOY_API_KEY=secret\r\n\r\n"
      .. "CONNECTION_ID=old # the first one\r\nexport CONNECTION_ID=\"new id\" # wins\r\nLAST=1", run.read(path))
    assert.equal("640", dotenv.mode(path), "the existing mode is kept")
    local vars = assert(dotenv.load(path))
    assert.equal("new id", vars.CONNECTION_ID)
  end)

  it("appends a missing key after a last line without newline", function()
    local path = dir .. "/.env"
    run.write(path, "A=1\n# note", "600")
    assert(dotenv.set(path, "CONNECTION_ID", "x"))
    assert.equal("A=1\n# note\nCONNECTION_ID=x\n", run.read(path))
  end)

  it("replaces a multi-line value as one unit", function()
    local path = dir .. "/.env"
    run.write(path, 'A="x\ny"\nB=2\n')
    assert(dotenv.set(path, "A", "z"))
    assert.equal("A=z\nB=2\n", run.read(path))
  end)

  it("refuses to touch a file it cannot parse and leaves no temp file", function()
    local path = dir .. "/.env"
    run.write(path, "garbage line\n")
    local ok, err = dotenv.set(path, "A", "1")
    assert.is_nil(ok)
    assert.matches(":1: expected KEY=VALUE", err, 1, true)
    assert.equal("garbage line\n", run.read(path))
    local p = io.popen("ls -A " .. run.quote(dir))
    local listing = p:read("*a")
    p:close()
    assert.equal(".env\n", listing)
  end)
end)

describe("alloy.config.load", function()
  local dir, cwd_env
  before_each(function()
    dir = run.tmpdir()
    cwd_env = dir .. "/.env"
  end)
  after_each(function() run.rmdir(dir) end)

  it("takes flags over environment over .env over defaults", function()
    run.write(cwd_env, "ALLOY_API_KEY=filekey\nALLOY_USER_ID=fileuser\nALLOY_BASE_URL=http://file\n"
      .. "ALLOY_API_VERSION=2024-03\nALLOY_EMBEDDED_URL=http://file-emb/\n", "600")
    local cfg = assert(config.load{
      flags = { env_file = cwd_env, user = "flaguser" },
      getenv = getenv_from{ ALLOY_USER_ID = "envuser", ALLOY_BASE_URL = "http://env", ALLOY_API_VERSION = "" },
    })
    assert.equal("flaguser", cfg.user_id)
    assert.equal("flag --user", cfg.source.user_id)
    assert.equal("http://env", cfg.base_url)
    assert.equal("environment", cfg.source.base_url)
    assert.equal("2024-03", cfg.api_version, "an empty environment value counts as unset")
    assert.equal(cwd_env, cfg.source.api_version)
    assert.equal("http://file-emb", cfg.embedded_url, "trailing slash dropped")
    assert.equal("filekey", cfg.api_key)
    assert.equal(30, cfg.timeout)
    assert.equal("default", cfg.source.timeout)
    assert.same({}, cfg.warnings)
  end)

  it("uses defaults when nothing is set", function()
    run.write(cwd_env, "")
    local cfg = assert(config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} })
    assert.equal("https://production.runalloy.com", cfg.base_url)
    assert.equal("https://embedded.runalloy.com", cfg.embedded_url)
    assert.equal("2025-09", cfg.api_version)
    assert.equal(2, cfg.retries)
    assert.is_nil(cfg.api_key)
  end)

  it("fails for a missing --env-file and for a broken one", function()
    local cfg, err, hint = config.load{ flags = { env_file = dir .. "/nope.env" }, getenv = getenv_from{} }
    assert.is_nil(cfg)
    assert.matches("cannot read the env file", err, 1, true)
    assert.matches("--env-file", hint, 1, true)
    run.write(cwd_env, "A=1\nB\n")
    cfg, err = config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} }
    assert.is_nil(cfg)
    assert.equal(cwd_env .. ":2: expected KEY=VALUE", err)
  end)

  it("rejects malformed values and names the variable and its source", function()
    run.write(cwd_env, "")
    local f = { env_file = cwd_env }
    local cfg, err = config.load{ getenv = getenv_from{ ALLOY_TIMEOUT = "soon" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("ALLOY_TIMEOUT (environment) must be a positive number", err, 1, true)
    cfg, err = config.load{ getenv = getenv_from{}, flags = { env_file = cwd_env, base_url = "ftp://x" } }
    assert.is_nil(cfg)
    assert.matches("ALLOY_BASE_URL (flag --base-url) must be an http", err, 1, true)
    cfg, err = config.load{ getenv = getenv_from{ ALLOY_API_VERSION = "latest" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("must look like 2025-09", err, 1, true)
    cfg, err = config.load{ getenv = getenv_from{ ALLOY_RETRIES = "1.5" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("ALLOY_RETRIES", err, 1, true)
  end)

  it("warns when a .env holding the key is readable by others", function()
    run.write(cwd_env, "ALLOY_API_KEY=k\n", "644")
    local cfg = assert(config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} })
    assert.equal(1, #cfg.warnings)
    assert.matches("readable by other users (mode 644); run: chmod 600", cfg.warnings[1], 1, true)
    run.write(cwd_env, "ALLOY_API_KEY=k\n", "600")
    cfg = assert(config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} })
    assert.same({}, cfg.warnings)
  end)

  it("describes the configuration without the key", function()
    run.write(cwd_env, "")
    local cfg = assert(config.load{ getenv = getenv_from{ ALLOY_API_KEY = "sekrit-key-value" },
                                    flags = { env_file = cwd_env } })
    local text = table.concat(config.describe(cfg), "\n")
    assert.matches("ALLOY_API_KEY%s+set %(16 characters%)", text)
    assert.is_nil(text:find("sekrit", 1, true))
  end)

  it("falls back to CURL_CA_BUNDLE for the CA file, and checks it can be read", function()
    run.write(cwd_env, "")
    run.write(dir .. "/a.pem", "")
    run.write(dir .. "/b.pem", "")
    local f = { env_file = cwd_env }
    local cfg = assert(config.load{ getenv = getenv_from{ CURL_CA_BUNDLE = dir .. "/a.pem" }, flags = f })
    assert.equal(dir .. "/a.pem", cfg.ca_file)
    cfg = assert(config.load{ getenv = getenv_from{ CURL_CA_BUNDLE = dir .. "/a.pem", ALLOY_CA_FILE = dir .. "/b.pem" },
                              flags = f })
    assert.equal(dir .. "/b.pem", cfg.ca_file)
    local err
    cfg, err = config.load{ getenv = getenv_from{ ALLOY_CA_FILE = dir .. "/missing.pem" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("ALLOY_CA_FILE (environment) names a file that cannot be read", err, 1, true)
  end)
end)

describe("alloy.hints", function()
  it("maps codes to the advice in DESIGN.md", function()
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
end)

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
