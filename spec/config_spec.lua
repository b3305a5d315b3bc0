-- alloy.config: configuration precedence, defaults and rules from alloy.so, failures as values.
local config = require "alloy.config"
local alloy = require "alloy"
local run = require "run"

local function getenv_from(t)
  return function(k) return t[k] end
end

describe("alloy.config.load", function()
  local dir, cwd_env
  before_each(function()
    dir = run.tmpdir()
    cwd_env = dir .. "/.env"
  end)
  after_each(function() run.rmdir(dir) end)

  it("takes flags over environment over .env over defaults", function()
    run.write(cwd_env, "ALLOY_API_KEY=filekey-0123\nALLOY_USER_ID=fileuser\nALLOY_BASE_URL=http://file\n"
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
    assert.equal("filekey-0123", cfg.api_key)
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
    local cfg, err = config.load{ flags = { env_file = dir .. "/nope.env" }, getenv = getenv_from{} }
    assert.is_nil(cfg)
    assert.matches("cannot read the env file", err.message, 1, true)
    assert.matches("--env-file", err.hint, 1, true)
    assert.equal(2, err.status)
    run.write(cwd_env, "A=1\nB\n")
    cfg, err = config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} }
    assert.is_nil(cfg)
    assert.equal(cwd_env .. ":2: expected KEY=VALUE", err.message)
    assert.equal(cwd_env .. ":2: expected KEY=VALUE", tostring(err))
    assert.equal(2, err.status)
  end)

  it("rejects malformed values and names the variable and its source", function()
    run.write(cwd_env, "")
    local f = { env_file = cwd_env }
    local cfg, err = config.load{ getenv = getenv_from{ ALLOY_TIMEOUT = "soon" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("ALLOY_TIMEOUT (environment): timeout must be a number of seconds", err.message, 1, true)
    assert.equal("fix ALLOY_TIMEOUT where it is set (environment)", err.hint)
    assert.equal(2, err.status)
    cfg, err = config.load{ getenv = getenv_from{}, flags = { env_file = cwd_env, base_url = "ftp://x" } }
    assert.is_nil(cfg)
    assert.matches("ALLOY_BASE_URL (flag --base-url): base_url must be an http", err.message, 1, true)
    cfg, err = config.load{ getenv = getenv_from{ ALLOY_API_VERSION = "latest" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("ALLOY_API_VERSION (environment): api_version must be a version date YYYY-MM", err.message, 1, true)
    cfg, err = config.load{ getenv = getenv_from{ ALLOY_RETRIES = "1.5" }, flags = f }
    assert.is_nil(cfg)
    assert.matches("ALLOY_RETRIES", err.message, 1, true)
  end)

  it("checks the key by alloy.new's rule, with where it is set and never the key itself", function()
    run.write(cwd_env, "ALLOY_API_KEY=abcdefgh\0ijklmnop1234\n", "600")
    local cfg, err = config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} }
    assert.is_nil(cfg)
    assert.equal("ALLOY_API_KEY (" .. cwd_env .. "): api_key must be at least 8 characters, without spaces, CR, LF or"
      .. " NUL", err.message)
    assert.equal(2, err.status)
    cfg, err = config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{ ALLOY_API_KEY = "short" } }
    assert.is_nil(cfg)
    assert.matches("^ALLOY_API_KEY %(environment%): ", err.message)
  end)

  it("warns when a .env holding the key is readable by others", function()
    run.write(cwd_env, "ALLOY_API_KEY=key-0123456789\n", "644")
    local cfg = assert(config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} })
    assert.equal(1, #cfg.warnings)
    assert.matches("readable by other users (mode 644); run: chmod 600", cfg.warnings[1], 1, true)
    run.write(cwd_env, "ALLOY_API_KEY=key-0123456789\n", "600")
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
    assert.matches("ALLOY_CA_FILE (environment) names a file that cannot be read", err.message, 1, true)
  end)

  it("takes every default from alloy.defaults", function()
    run.write(cwd_env, "")
    local f = { env_file = cwd_env }
    local cfg = assert(config.load{ flags = f, getenv = getenv_from{} })
    for _, field in ipairs({ "base_url", "embedded_url", "api_version", "timeout", "retries", "backoff" }) do
      assert.equal(alloy.defaults[field], cfg[field], field)
      assert.equal("default", cfg.source[field], field)
    end
    -- the table is read, not restated: a changed default shows
    local saved = alloy.defaults.timeout
    alloy.defaults.timeout = 7
    cfg = config.load{ flags = f, getenv = getenv_from{} }
    alloy.defaults.timeout = saved
    assert.equal(7, cfg.timeout)
  end)

  it("checks each value with alloy.check_option, numbers converted first", function()
    run.write(cwd_env, "ALLOY_BACKOFF=-1\n")
    local f = { env_file = cwd_env }
    local cfg, err = config.load{ flags = f, getenv = getenv_from{} }
    assert.is_nil(cfg)
    local _, rule = alloy.check_option("backoff", -1)
    assert.equal("ALLOY_BACKOFF (" .. cwd_env .. "): " .. rule, err.message)
    assert.equal(2, err.status)
    cfg = assert(config.load{ flags = f, getenv = getenv_from{ ALLOY_BACKOFF = "0.25", ALLOY_TIMEOUT = "2.5",
                                                               ALLOY_RETRIES = "0" } })
    assert.equal(0.25, cfg.backoff)
    assert.equal(2.5, cfg.timeout)
    assert.equal(0, cfg.retries)
    cfg, err = config.load{ flags = f, getenv = getenv_from{ ALLOY_RETRIES = "11" } }
    assert.is_nil(cfg)
    assert.equal("ALLOY_RETRIES (environment): " .. select(2, alloy.check_option("retries", 11)), err.message)
  end)

  it("refuses a CA file that is a directory or a FIFO (which would block)", function()
    run.write(cwd_env, "")
    assert(os.execute("mkfifo " .. run.quote(dir .. "/ca.fifo")))
    local f = { env_file = cwd_env }
    local cfg, err = config.load{ flags = f, getenv = getenv_from{ ALLOY_CA_FILE = dir } }
    assert.is_nil(cfg)
    assert.equal("ALLOY_CA_FILE (environment): " .. dir .. " is a directory, not a regular file", err.message)
    cfg, err = config.load{ flags = f, getenv = getenv_from{ ALLOY_CA_FILE = dir .. "/ca.fifo" } }
    assert.is_nil(cfg)
    assert.equal("ALLOY_CA_FILE (environment): " .. dir .. "/ca.fifo is a FIFO, not a regular file", err.message)
  end)

  describe("an env file that is not a regular file", function()
    it("a FIFO: one clear error, without blocking", function()
      assert(os.execute("mkfifo " .. run.quote(cwd_env)))
      local cfg, err = config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} }
      assert.is_nil(cfg)
      assert.equal("cannot read the env file: " .. cwd_env .. " is a FIFO, not a regular file", err.message)
      assert.equal(2, err.status)
    end)

    it("a directory: one clear error", function()
      assert(os.execute("mkdir " .. run.quote(cwd_env)))
      local cfg, err = config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} }
      assert.is_nil(cfg)
      assert.equal("cannot read the env file: " .. cwd_env .. " is a directory, not a regular file", err.message)
    end)

    it("a symlink: read through the link", function()
      run.write(dir .. "/real.env", "ALLOY_USER_ID=linked\n", "600")
      assert(os.execute("ln -s real.env " .. run.quote(cwd_env)))
      local cfg = assert(config.load{ flags = { env_file = cwd_env }, getenv = getenv_from{} })
      assert.equal("linked", cfg.user_id)
      assert.equal(cwd_env, cfg.source.user_id)
    end)
  end)

  it("returns nil, err (status 2, how to build it) when alloy.so cannot be loaded, and does not exit", function()
    local exit = stub(os, "exit")
    local saved = package.loaded.alloy
    package.loaded.alloy = nil
    package.preload.alloy = function() error("module 'alloy' not found:\n\tno file 'alloy.so'", 0) end
    local cfg, err = config.load{ getenv = getenv_from{} }
    package.preload.alloy = nil
    package.loaded.alloy = saved
    exit:revert()
    assert.is_nil(cfg)
    assert.equal("cannot load alloy.so: module 'alloy' not found:", err.message)
    assert.matches("run `make`", err.hint, 1, true)
    assert.equal(2, err.status)
    assert.stub(exit).was_not_called()
  end)
end)

-- Configuration errors: exit 2, one rule per option (alloy.check_option, as alloy.new), found
-- before anything is sent, and a URL's password printed nowhere.
describe("configuration errors in the scripts", function()
  local Sandbox = require "sandbox"
  local sb, uid, dir
  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "conf-user" }
    dir = run.tmpdir()
  end)
  after_each(function() run.rmdir(dir) end)

  local SCRIPTS = { { "get_jwt_token", {} }, { "get_jwt_token", { "--json" } }, { "list_connections", { "--json" } },
                    { "users", { "list" } }, { "alloy_main", { "token" } } }

  -- Runs every script (or those given) with env and args added: each must stop at exit 2
  -- with the rule's message.
  local function refused(label, env, args, want, scripts)
    for _, s in ipairs(scripts or SCRIPTS) do
      local a = {}
      for _, x in ipairs(s[2]) do a[#a + 1] = x end
      for _, x in ipairs(args or {}) do a[#a + 1] = x end
      local r = run.script(s[1], a, { env = run.env(sb, uid, env), cwd = dir })
      local what = s[1] .. " " .. table.concat(a, " ") .. " [" .. label .. "]"
      assert.equals(2, r.code, what .. "\n" .. r.stdout .. r.stderr)
      assert.equals("", r.stdout, what)
      assert.matches(want, r.stderr, 1, true)
      assert.is_nil((r.stdout .. r.stderr):find("s3cretPass", 1, true), what .. " printed the password")
    end
    assert.same({}, sb:requests(), label .. ": something was sent")
  end

  it("a base URL with a query, fragment, user:password@, bad port or scheme, from any source", function()
    local port = sb.url:match(":(%d+)$")
    local bad = { sb.url .. "?x=1", sb.url .. "/#f", "http://user:s3cretPass@127.0.0.1:" .. port,
                  "http://s3cretPass@127.0.0.1:" .. port, "http://127.0.0.1:65536", "http://127.0.0.1:0",
                  "http://127.0.0.1:junk", "ftp://127.0.0.1:" .. port, "http://127.0.0.1 :" .. port }
    for _, url in ipairs(bad) do
      refused("ALLOY_BASE_URL " .. url, { ALLOY_BASE_URL = url }, nil, "base_url must be an http:// or https:// URL")
      refused("ALLOY_EMBEDDED_URL " .. url, { ALLOY_EMBEDDED_URL = url }, nil,
        "embedded_url must be an http:// or https:// URL")
    end
    refused("--embedded-url", nil, { "--embedded-url", "http://u:s3cretPass@127.0.0.1:" .. port },
      "error: ALLOY_EMBEDDED_URL (flag --embedded-url): embedded_url must be", { SCRIPTS[1], SCRIPTS[2] })
    run.write(dir .. "/.env", "ALLOY_BASE_URL=http://u:s3cretPass@127.0.0.1:" .. port .. "\n", "600")
    refused(".env", { ALLOY_BASE_URL = false }, nil, "error: ALLOY_BASE_URL (.env): base_url must be")
  end)

  it("ALLOY_RETRIES, ALLOY_TIMEOUT, ALLOY_BACKOFF out of range: the module's one rule, word for word", function()
    local cases = { { "ALLOY_RETRIES", "retries", { "50", "11", "-1", "1.5", "x", "nan", "inf" } },
                    { "ALLOY_TIMEOUT", "timeout", { "0", "1e999", "86401", "never", "-1" } },
                    { "ALLOY_BACKOFF", "backoff", { "61", "-0.5", "inf" } } }
    for _, case in ipairs(cases) do
      local var, option, values = case[1], case[2], case[3]
      for _, v in ipairs(values) do
        local _, rule = alloy.check_option(option, tonumber(v) or v)
        assert.is_string(rule, v)
        local ok, err = pcall(alloy.new, { api_key = "key-0123456789", [option] = tonumber(v) or v })
        assert.is_false(ok)
        assert.equals("alloy.new: " .. rule, err)
        refused(var .. "=" .. v, { [var] = v }, nil, "error: " .. var .. " (environment): " .. rule .. "\n")
      end
    end
  end)

  it("an API version that is not YYYY-MM", function()
    for _, v in ipairs { "2025-09?evil=1", "x?evil=1#", "2025-09/..", "2025-13", "2025-9" } do
      refused("ALLOY_API_VERSION " .. v, { ALLOY_API_VERSION = v }, nil, "api_version must be a version date YYYY-MM")
      refused("--api-version " .. v, nil, { "--api-version", v }, "api_version must be a version date YYYY-MM",
        { SCRIPTS[1], SCRIPTS[2] })
    end
  end)

  it("a user id with '/', '?', '#' or a control character: exit 2, the argument named, nothing sent", function()
    for _, id in ipairs { "a/b", "../users", "a?b=1", "a#b", "a\27[2Jb", "." } do
      for _, args in ipairs { {}, { "--json" } } do
        local a = { "--user", id }
        for _, x in ipairs(args) do a[#a + 1] = x end
        local r = run.script("get_jwt_token", a, { env = run.env(sb, uid), cwd = dir })
        assert.equals(2, r.code, id .. "\n" .. r.stderr)
        assert.equals("", r.stdout)
        assert.matches("^error: INVALID_ARGUMENT: path parameter 'userId' must be", r.stderr)
      end
    end
    assert.same({}, sb:requests())
  end)
end)
