-- A .env holding ALLOY_API_KEY inside a git work tree that git does not ignore: the scripts
-- warn once on stderr (a commit would publish the key), never showing the key; an ignored
-- .env, a .env outside any repository, or one without the key: no warning.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"

local WARNING = "warning: .env holds ALLOY_API_KEY and is not ignored by git (a commit would publish the key);"
  .. " add it to .gitignore\n"

local function git(dir, args)
  local ok = os.execute("cd " .. run.quote(dir) .. " && git -c user.name=spec -c user.email=spec@example.com "
    .. args .. " >/dev/null 2>&1")
  assert(ok == true or ok == 0, "git " .. args)
end

local function count(s, plain)
  return select(2, s:gsub(plain:gsub("%p", "%%%0"), ""))
end

describe("a .env with the key that git would commit #scripts", function()
  teardown(run.check_scripts_only)
  local sb, uid, repo
  setup(function() sb = Sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    uid = sb:create_user {}
    repo = run.tmpdir()
    git(repo, "init -q")
    run.write(repo .. "/.env", "ALLOY_API_KEY=" .. sb.api_key .. "\nALLOY_USER_ID=" .. uid .. "\n", "600")
  end)
  after_each(function() run.rmdir(repo) end)

  -- the key only in .env: the environment has the rest
  local function token(dir, args)
    local r = run.script("get_jwt_token", args or {}, { cwd = dir, env = run.env(sb, uid, { ALLOY_API_KEY = false }) })
    assert.equal(0, r.code, r.stderr)
    assert.is_nil((r.stdout .. r.stderr):find(sb.api_key, 1, true))
    return r
  end

  it("not ignored: one warning, naming the file, never the key", function()
    local r = token(repo)
    assert.equal(1, count(r.stderr, WARNING))
    assert.matches("^" .. WARNING:gsub("%p", "%%%0"), r.stderr)
  end)

  it("ignored through .gitignore (the README's line): no warning", function()
    local out, err, code = readme.run("echo .env >> .gitignore", { cwd = repo })
    assert.equal(0, code, out .. err)
    assert.is_nil(token(repo).stderr:find("warning", 1, true))
  end)

  it("committed, even if .gitignore lists it: the warning", function()
    run.write(repo .. "/.gitignore", ".env\n")
    git(repo, "add -f .env .gitignore")
    git(repo, "commit -qm env")
    assert.equal(1, count(token(repo).stderr, WARNING))
  end)

  it("--env-file in a subdirectory, run from elsewhere: the warning names that path", function()
    os.execute("mkdir " .. run.quote(repo .. "/sub") .. " && mv " .. run.quote(repo .. "/.env") .. " "
      .. run.quote(repo .. "/sub/.env"))
    local elsewhere = run.tmpdir()
    local r = token(elsewhere, { "--env-file", repo .. "/sub/.env" })
    run.rmdir(elsewhere)
    assert.equal(1, count(r.stderr, "warning: " .. repo .. "/sub/.env holds ALLOY_API_KEY and is not ignored by git"))
  end)

  it("outside a repository, or a .env without the key: no warning", function()
    local plain = run.tmpdir()
    run.write(plain .. "/.env", "ALLOY_API_KEY=" .. sb.api_key .. "\n", "600")
    local r = token(plain)
    run.rmdir(plain)
    assert.equal("", r.stderr:match("warning[^\n]*") or "")
    run.write(repo .. "/.env", "ALLOY_USER_ID=" .. uid .. "\n", "600")
    r = run.script("get_jwt_token", {}, { cwd = repo, env = run.env(sb, uid) })
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("warning", 1, true))
  end)

  it("a path git cannot be asked about safely (a newline in it): no git, no warning", function()
    local odd = repo .. "/odd\ndir"
    os.execute("mkdir " .. run.quote(odd) .. " && cp " .. run.quote(repo .. "/.env") .. " "
      .. run.quote(odd .. "/.env"))
    local r = token(repo, { "--env-file", "odd\ndir/.env" })
    assert.is_nil(r.stderr:find("warning", 1, true))
  end)
end)
