-- alloy.oauth in-process, as a host uses it: every failure comes back as nil, err (an
-- alloy.failure) and the process goes on; against the sandbox over real HTTP.
local Sandbox = require "sandbox"
local run = require "run"
local socket = require "socket"
local context = require "alloy.context"
local oauth = require "alloy.oauth"
local output = require "alloy.output"

describe("alloy.oauth.run", function()
  local sb, uid, port, redirect, client, exit, out

  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)

  before_each(function()
    sb:reset()
    uid = sb:create_user{ username = "hana" }
    port = run.closed_port()
    redirect = "http://localhost:" .. port .. "/oauth/callback"
    client = sb:client{ retries = 0 }
    exit = stub(os, "exit")
    out = {}
  end)
  after_each(function()
    client:close()
    exit:revert()
    assert.stub(exit).was_not_called()
  end)

  -- The flow as a host runs it: its own configuration and client, its own output.
  local function flow(args, o)
    o = o or {}
    local sink = { write = function(self, s) out[#out + 1] = s; return self end, flush = function() end }
    local ctx = context.new{ args = args, out = output.new{ quiet = true, stdout = sink, stderr = sink },
                             cfg = { api_key = sb.api_key, user_id = uid, base_url = sb.url, env_path = ".env" },
                             client = o.client or client }
    return oauth.run{ ctx = ctx, connector = "notion", redirect_uri = o.redirect or redirect }
  end

  local function posts()
    local n = 0
    for _, q in ipairs(sb:requests()) do
      if q.method == "POST" then n = n + 1 end
    end
    return n
  end

  it("a busy port: nil, err (status 2) before anything is created", function()
    local blocker = assert(socket.bind("127.0.0.1", port))
    local done, err = flow({})
    blocker:close()
    assert.is_nil(done)
    assert.equal("cannot listen on 127.0.0.1:" .. port .. ": address already in use", err.message)
    assert.matches("another program is using port " .. port, err.hint, 1, true)
    assert.equal(2, err.status)
    assert.equal(0, posts())
  end)

  it("contradictory or impossible settings: nil, err (status 2)", function()
    local done, err = flow({ listen = true, no_listen = true })
    assert.is_nil(done)
    assert.equal("--listen and --no-listen contradict each other", err.message)
    assert.equal(2, err.status)
    done, err = flow({ no_listen = true, save = true })
    assert.is_nil(done)
    assert.matches("^%-%-save needs the redirect listener", err.message)
    done, err = flow({}, { redirect = "ftp://x" })
    assert.is_nil(done)
    assert.matches("^redirect URI must be an http:// or https:// URL", err.message)
    assert.equal(0, posts())
  end)

  it("an API failure: nil, err with the code and its hint (status 1)", function()
    local bad = sb:client{ retries = 0, api_key = "wrong-key-0123456789abcdefghijkl" }
    local done, err = flow({ no_listen = true }, { client = bad })
    bad:close()
    assert.is_nil(done)
    assert.equal("HTTP_401", err.code)
    assert.equal("create_credential", err.op)
    assert.matches("^check ALLOY_API_KEY", require("alloy.hints").for_failure(err))
    assert.equal(1, err.status)
  end)

  it("nobody comes back in time: nil, err (status 1), and the port is free again", function()
    local done, err = flow({ timeout = "0.2" })
    assert.is_nil(done)
    assert.equal("no redirect arrived on " .. redirect .. " within 0.2 s (timeout)", err.message)
    assert.equal(1, err.status)
    assert.equal(1, #out) -- the OAuth URL
    assert.matches("^https?://[^\n]+\n$", out[1])
    local s = assert(socket.bind("127.0.0.1", port))
    s:close()
  end)

  it("without listening: the OAuth URL as the result", function()
    local done = assert(flow({ no_listen = true }))
    assert.matches("^" .. sb.url:gsub("%p", "%%%0") .. "/api/strategy/connector/notion/authorize%?", done.oauthUrl)
    assert.is_nil(done.credential)
    assert.same({ done.oauthUrl .. "\n" }, out)
  end)
end)
