-- alloy.config: configuration precedence, defaults and rules from alloy.so, failures as values.
local config = require "alloy.config"
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
