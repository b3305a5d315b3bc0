-- The shell commands of README.md and docs/*.md are run by specs exactly as printed
-- (spec/support/readme.lua): this file fails for every command a document shows that no spec
-- passes, as a literal, to readme.run / readme.spawn / readme.background / readme.command,
-- naming the document and line, and runs the commands that belong to no other spec.
local readme = require "readme"
local run = require "run"
local Sandbox = require "sandbox"

-- The only commands shown that are not run inside the suite: why, and the file that runs them
-- instead (checked to contain the command), when one does.
local NOT_IN_SUITE = {
  ["make demo"] = { where = ".ci/first-run",
    why = "installs Debian packages; run first thing in a fresh clone, which checks it prints a JWT" },
  ["make test"] = { where = ".ci/run",
    why = "is the suite itself; CI runs it last (and .ci/first-run on a fresh clone)" },
  ["sudo luarocks --lua-version=5.4 make --deps-mode=none"] = {
    why = "installs into /usr/local as root; spec/luarocks_spec.lua runs the same build into a temporary "
      .. "tree and the --local form as printed" },
}

local function ls(pattern)
  local out = {}
  local p = io.popen("cd " .. run.quote(run.root) .. " && ls " .. pattern)
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end

-- The rows of the first markdown table in text: { {cell, ...}, ... } without header and rule.
local function table_rows(text)
  local rows = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^|") and not line:match("^| %-%-%-") then
      local cells = {}
      for cell in line:sub(2):gmatch("%s*(.-)%s*|") do cells[#cells + 1] = cell end
      rows[#rows + 1] = cells
    end
  end
  table.remove(rows, 1)
  return rows
end

local function codes_in(cell)
  local out = {}
  for c in cell:gmatch("`([^`]+)`") do out[#out + 1] = c end
  return out
end

describe("the documentation", function()
  describe("readme.commands", function()
    it("takes sh lines and the `$ ` lines of text blocks, without comments, each once", function()
      local md = table.concat({
        "intro `make` is prose", "```sh", "make demo     # a comment", "# only a comment", "",
        "lua5.4 lua/x.lua --json", "make demo", "```", "```text", "$ lua5.4 lua/y.lua  # why",
        "output line", "```", "```lua", "local x = 1", "```", "```sh", "a '#b' c", "```",
      }, "\n")
      local got = {}
      for _, c in ipairs(readme.commands(md)) do got[#got + 1] = c.cmd end
      assert.same({ "make demo", "lua5.4 lua/x.lua --json", "lua5.4 lua/y.lua", "a '#b' c" }, got)
    end)

    it("a command no document shows is refused, naming it", function()
      local command = readme.command -- (an alias: the coverage check reads literal calls only)
      assert.has_error(function() command("lua5.4 lua/not_in_readme.lua") end,
        "README.md and docs/*.md show no command `lua5.4 lua/not_in_readme.lua` (```sh line or `$ ` line of a"
        .. " ```text block)")
    end)

    it("the documents are README.md and docs/*.md; a section ends at its level's next heading", function()
      local docs = readme.documents()
      assert.equal("README.md", docs[1])
      assert.truthy(#docs > 1)
      for i = 2, #docs do assert.matches("^docs/[%w_%-]+%.md$", docs[i]) end
      local section = readme.section("docs/commands.md", "## Trying them on the sandbox")
      assert.matches("\n### From zero to a first executed action\n", section, 1, true)
      assert.is_nil(section:find("\n## ", 1, true))
    end)
  end)

  describe("readme.referenced", function()
    it("finds literals and tables of literals, and the lines of calls it cannot read", function()
      local call = "readme" .. "."
      local src = call .. 'run("make", {})\n' .. call .. "spawn({ 'a b', [[c \"d\"]] }, o)\n"
        .. call .. "command(cmd)\n" .. call .. 'checkout()\n' .. call .. 'run("x\\"y")\n'
        .. call .. 'run("half " .. "and half")\n' .. call .. 'background("make sandbox", o)\n'
        .. call .. 'command("t <x>"):gsub("<x>", x)\n'
      local found, opaque = readme.referenced(src)
      assert.same({ make = true, ["a b"] = true, ['c "d"'] = true, ['x"y'] = true, ["make sandbox"] = true,
                    ["t <x>"] = true }, found)
      assert.same({ 3, 6 }, opaque)
    end)
  end)

  it("every command it shows is run by a spec (or listed, with where it runs instead)", function()
    local covered, problems = {}, {}
    for _, f in ipairs(ls("spec/*.lua")) do
      local found, opaque = readme.referenced(run.read(run.root .. "/" .. f))
      for cmd in pairs(found) do
        covered[cmd] = true
        if not pcall(readme.command, cmd) then
          problems[#problems + 1] = f .. " runs `" .. cmd .. "`, which no document shows"
        end
      end
      for _, line in ipairs(opaque) do
        problems[#problems + 1] = f .. ":" .. line .. ": the command is not a string literal"
      end
    end
    local shown = {}
    for _, doc in ipairs(readme.documents()) do
      for _, c in ipairs(readme.commands(readme.read(doc))) do
        shown[c.cmd] = true
        local listed = NOT_IN_SUITE[c.cmd]
        if covered[c.cmd] and listed then
          problems[#problems + 1] = doc .. ":" .. c.line .. ": `" .. c.cmd
            .. "` is run by a spec; drop it from NOT_IN_SUITE"
        elseif not covered[c.cmd] and not listed then
          problems[#problems + 1] = doc .. ":" .. c.line .. ": no spec runs `" .. c.cmd .. "`"
        end
      end
    end
    for cmd, e in pairs(NOT_IN_SUITE) do
      if not shown[cmd] then
        problems[#problems + 1] = "NOT_IN_SUITE lists `" .. cmd .. "`, which no document shows any more"
      elseif e.where and not run.read(run.root .. "/" .. e.where):find(cmd, 1, true) then
        problems[#problems + 1] = e.where .. " does not run `" .. cmd .. "`"
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  it("lists in Dependencies exactly the packages the Makefile may install", function()
    local out, err, code = readme.run("make print-packages")
    assert.are.equal(0, code, err)
    local made = {}
    for p in out:gmatch("%S+") do made[#made + 1] = p end
    local listed = {}
    for _, row in ipairs(table_rows(readme.section("README.md", "## Dependencies"))) do
      if not row[1]:find("optional", 1, true) then
        for _, p in ipairs(codes_in(row[1])) do listed[#listed + 1] = p end
      end
    end
    table.sort(made)
    table.sort(listed)
    assert.are.same(made, listed)
  end)

  it("shows in the Options table exactly alloy.defaults' values", function()
    local alloy = require "alloy"
    local shown = {}
    for _, row in ipairs(table_rows(readme.section("docs/lua-api.md", "## Options"))) do
      local name = row[1]:match("^`([%w_]+)`$")
      if name then shown[name] = row[3]:gsub(" %(.-%)$", ""):gsub("^`\"?", ""):gsub("\"?`$", "") end
    end
    local problems = {}
    for name, value in pairs(alloy.defaults) do
      if shown[name] ~= tostring(value) then
        problems[#problems + 1] = ("%s: docs/lua-api.md shows %s, alloy.defaults has %s"):format(name,
          tostring(shown[name]), tostring(value))
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  describe("real use", function()
    local sb
    setup(function() sb = Sandbox.start() end)
    teardown(function() if sb then sb:stop() end end)

    -- The ```lua block under "Failures as values" in docs/lua-api.md, run as printed in a
    -- script of its own (alloy.paths finds this checkout's modules and build, as the commands do).
    local function helpers_example(env)
      local block = assert(readme.section("docs/lua-api.md", "### Failures as values"):match("\n```lua\n(.-)\n```"))
      local dir = run.tmpdir()
      local file = dir .. "/example.lua"
      run.write(file, ("arg = { [0] = %q }; package.path = %q .. package.path; require 'alloy.paths'\n")
        :format(run.root .. "/lua/example.lua", run.root .. "/lua/?.lua;") .. block .. "\n")
      local r = run.script(file, {}, { cwd = dir, env = env })
      run.rmdir(dir)
      return r
    end

    it("the helpers example: a failure is a value with message, hint, status and code", function()
      local r = helpers_example(run.env(sb, false))
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("^HTTP_404: User not found [^\t\n]*\t[^\t\n]+\t1\tHTTP_404\n$", r.stdout)
      r = helpers_example(run.env(sb, false, { ALLOY_API_KEY = false }))
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("\t2\tnil\n$", r.stdout)
    end)

    it("a .env readable by others, chmod 600, make, the first token: no warning, the user's JWT", function()
      local uid = sb:create_user { username = "readme-user" }
      local dir = readme.checkout()
      run.write(dir .. "/.env", "ALLOY_API_KEY=" .. sb.api_key .. "\nALLOY_USER_ID=" .. uid .. "\n", "644")
      local env = run.env(sb, false, { ALLOY_API_KEY = false, ALLOY_USER_ID = false })
      local _, merr, mcode = readme.run({ "chmod 600 .env", "make" }, { cwd = dir, env = env })
      local p = io.popen("stat -c %a " .. run.quote(dir .. "/.env"))
      local mode = p:read("*l")
      p:close()
      local out, err, code = readme.run("lua5.4 lua/get_jwt_token.lua", { cwd = dir, env = env })
      run.rmdir(dir)
      assert.are.equal(0, mcode, merr)
      assert.are.equal("600", mode)
      assert.are.equal(0, code, err)
      assert.matches("^[%w_%-]+%.[%w_%-]+%.[%w_%-]+\n$", out)
      assert.are.equal(uid, run.jwt_payload(out:sub(1, -2)).userId)
      assert.is_nil(err:find("warning", 1, true), err)
      assert.matches("user:        " .. uid, err, 1, true)
    end)
  end)
end)
