-- A careless environment: a .env (or --env-file) that is not a readable regular file of
-- sane size is a configuration error (exit 2) with one line naming the path and what is
-- wrong; it is never silently skipped, never blocks, never loaded whole; nothing is sent.
local Sandbox = require "sandbox"
local run = require "run"

local function is_root()
  local p = io.popen("id -u")
  local id = p:read("*l")
  p:close()
  return id == "0"
end

-- Runs a script as a user runs it; when this is root (who reads and writes anything), as
-- nobody (the checkout must be readable by others).
local function as_user(script, args, opts)
  if is_root() then
    local argv = { "exec setpriv --reuid=65534 --regid=65534 --clear-groups", run.quote(run.lua),
                   run.quote(run.root .. "/lua/" .. script .. ".lua") }
    for _, a in ipairs(args) do argv[#argv + 1] = run.quote(a) end
    opts.shell = table.concat(argv, " ")
  end
  return run.script(script, args, opts)
end

describe("a .env that cannot be an env file #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, dir
  Sandbox.per_test_user("erin", function(s, u) sb, uid = s, u end)
  before_each(function() dir = run.tmpdir() end)
  after_each(function() run.rmdir(dir) end)

  local function sh(cmd) assert(os.execute("cd " .. run.quote(dir) .. " && " .. cmd)) end

  local CASES = {
    { "a directory", "mkdir .env", ".env is a directory, not a regular file" },
    { "a FIFO", "mkfifo .env", ".env is a FIFO, not a regular file" },
    { "a link to /dev/zero", "ln -s /dev/zero .env", ".env is a device (through a symbolic link)" },
    { "a link to a FIFO", "mkfifo f && ln -s f .env", ".env is a FIFO (through a symbolic link)" },
    { "a link to a directory", "mkdir d && ln -s d .env", ".env is a directory (through a symbolic link)" },
    { "a dangling link", "ln -s missing.env .env", ".env is a symbolic link to nothing" },
    { "a link loop", "ln -s .env .env", ".env is a symbolic link that loops" },
    { "bigger than 1 MiB", "head -c 2000000 /dev/zero | tr '\\0' '#' > .env", ".env is larger than 1048576 bytes" },
  }

  for _, c in ipairs(CASES) do
    local what, setup_cmd, want = c[1], c[2], c[3]
    it(what .. ": exit 2, one error line naming it, nothing sent, no prompt", function()
      sh(setup_cmd)
      sb:clear_requests()
      -- no ALLOY_API_KEY in the environment: skipping the file would end in "not set"
      local env = run.env(sb, uid, { ALLOY_API_KEY = false })
      for _, script in ipairs { "list_connections", "get_jwt_token", "users" } do
        local r = run.script(script, {}, { env = env, cwd = dir })
        assert.equal(2, r.code, r.stderr)
        assert.equal("", r.stdout)
        local lines = run.lines(r.stderr)
        assert.equal(2, #lines, r.stderr)
        assert.matches("^error: cannot read the env file: ", lines[1])
        assert.matches(want, lines[1], 1, true)
        assert.matches("^hint: ", lines[2])
        assert.is_nil(r.stderr:find("nil", 1, true), r.stderr)
        assert.is_nil(r.stderr:find("ALLOY_API_KEY is not set", 1, true), r.stderr)
      end
      -- --save never gets as far as writing (nor says it did)
      local r0 = run.script("initiate_oauth", { "--connector", "notion", "--redirect-uri",
        "http://localhost:" .. run.closed_port() .. "/cb", "--save" }, { env = env, cwd = dir })
      assert.equal(2, r0.code, r0.stderr)
      assert.matches(want, r0.stderr, 1, true)
      assert.is_nil(r0.stderr:find("Saved", 1, true))
      -- --env-file naming it says the same
      sh("mv .env other.env 2>/dev/null || true")
      local r = run.script("list_connections", { "--env-file", "other.env" }, { env = env, cwd = dir })
      assert.equal(2, r.code, r.stderr)
      assert.matches("^error: cannot read the env file: other%.env", r.stderr)
      assert.same({}, sb:requests())
    end)
  end

  it("unreadable (mode 000): exit 2, one line naming it, not skipped", function()
    run.write(dir .. "/.env", "ALLOY_USER_ID=" .. uid .. "\n", "000")
    os.execute("chmod 755 " .. run.quote(dir))
    local r = as_user("list_connections", {}, { env = run.env(sb, uid, { ALLOY_API_KEY = false }), cwd = dir })
    assert.equal(2, r.code, r.stderr)
    assert.equal(2, #run.lines(r.stderr), r.stderr)
    assert.matches("^error: cannot read the env file: %.env", r.stderr)
    assert.is_nil(r.stderr:find("nil", 1, true), r.stderr)
  end)

  it("--save into a read-only directory: one error line, no shell noise, never \"Saved\"", function()
    run.write(dir .. "/.env", "ALLOY_USER_ID=" .. uid .. "\n", "644")
    assert(os.execute("chmod 555 " .. run.quote(dir)))
    local args = { "--connector", "acuityScheduling", "--field", "userId=1", "--save", "--new" }
    local r = as_user("initiate_oauth", args, { env = run.env(sb, uid), cwd = dir, stdin = "acuity-secret-1\n" })
    os.execute("chmod 755 " .. run.quote(dir))
    assert.equal(1, r.code, r.stderr)
    local lines = run.lines(r.stderr)
    assert.matches("^Connected: acuityScheduling connection %x+ ", lines[#lines - 2])
    assert.equal("error: could not save CONNECTION_ID to .env: .env: cannot create a temporary file: Permission"
      .. " denied", lines[#lines - 1])
    assert.matches("^hint: add CONNECTION_ID=%x+ to it by hand$", lines[#lines])
    assert.is_nil(r.stderr:find("Saved", 1, true))
    assert.equal("ALLOY_USER_ID=" .. uid .. "\n", run.read(dir .. "/.env"))
  end)

  it("a parse error names the line, never the key on it", function()
    run.write(dir .. "/.env", "ALLOY_USER_ID=" .. uid .. "\nALLOY_API_KEY=\n" .. sb.api_key .. " x\n", "600")
    local r = run.script("list_connections", {}, { env = run.env(sb, uid, { ALLOY_API_KEY = false }), cwd = dir })
    assert.equal(2, r.code, r.stderr)
    assert.matches("^error: %.env:3: ", r.stderr)
    for i = 1, #sb.api_key - 7 do
      assert.is_nil(r.stderr:find(sb.api_key:sub(i, i + 7), 1, true), r.stderr)
    end
  end)
end)
