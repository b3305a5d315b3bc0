-- The documentation (README.md and docs/*.md) is run and checked by specs: its shell commands
-- exactly as printed (spec/support/readme.lua), what it states against the code it states it
-- about. This file fails for every command a document shows that no spec passes, as a
-- literal, to readme.run / readme.spawn / readme.background / readme.command, naming the
-- document and line; checks the tables and the Lua layout the documents give against the
-- code, their links and contents lists; and runs the commands and snippets that belong to no
-- other spec.
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

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, blanks as -.
local function anchor(heading)
  return (heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))
end

-- Whether a script runs `cmd`: on a line that is not a comment, not as the start of a longer
-- word ("make test" is not "make test-all").
local function runs(text, cmd)
  for line in text:gmatch("[^\n]+") do
    if not line:match("^%s*#") then
      local from = 1
      while true do
        local a, b = line:find(cmd, from, true)
        if not a then break end
        if not line:sub(b + 1, b + 1):match("[%w_%-]") then return true end
        from = b + 1
      end
    end
  end
  return false
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
      elseif e.where and not runs(run.read(run.root .. "/" .. e.where), cmd) then
        problems[#problems + 1] = e.where .. " does not run `" .. cmd .. "`"
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  it("every link between the documents leads to a file, and to a heading there", function()
    local headings, problems = {}, {}
    local function anchors(doc)
      if not headings[doc] then
        headings[doc] = {}
        for line in (readme.read(doc) .. "\n"):gmatch("([^\n]*)\n") do
          local h = line:match("^#+ (.+)$")
          if h then headings[doc][anchor(h)] = true end
        end
      end
      return headings[doc]
    end
    for _, doc in ipairs(readme.documents()) do
      local dir = doc:match("^(.*)/") or ""
      local text = readme.read(doc):gsub("\n```.-\n```", "")
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a+:") then
          local file, frag = target:match("^([^#]*)#?(.*)$")
          local path = file == "" and doc or (dir ~= "" and (dir .. "/" .. file) or file)
          while path:find("[^/]+/%.%./") do path = path:gsub("[^/]+/%.%./", "", 1) end
          path = path:gsub("^%./", ""):gsub("/$", "")
          if not require("alloy").file_info(run.root .. "/" .. path, true) then
            problems[#problems + 1] = doc .. ": a link to " .. target .. ": no such file"
          elseif frag ~= "" and not (path:match("%.md$") and anchors(path)[frag]) then
            problems[#problems + 1] = doc .. ": a link to " .. target .. ": no such heading"
          end
        end
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  it("each docs/*.md starts with a list linking each of its sections", function()
    local problems = {}
    for _, doc in ipairs(readme.documents()) do
      if doc ~= "README.md" then
        local text = readme.read(doc)
        local first = text:match("^# [^\n]+\n.-\n(%- %[.-)\n\n")
        local before = first and text:sub(1, (text:find(first, 1, true)))
        if not first or before:find("\n## ", 1, true) then
          problems[#problems + 1] = doc .. ": no contents list before its first section"
        else
          for h in (text:gsub("\n```.-\n```", "") .. "\n"):gmatch("\n## ([^\n]+)") do
            if not first:find("](#" .. anchor(h) .. ")", 1, true) then
              problems[#problems + 1] = doc .. ": the contents list has no link to ## " .. h
            end
          end
        end
      end
    end
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

  it("lists every variable of alloy.config.VARS with its default", function()
    local alloy, config = require "alloy", require "alloy.config"
    local shown = {}
    for _, row in ipairs(table_rows(readme.section("docs/configuration.md", "## Variables"))) do
      shown[codes_in(row[1])[1]] = row[#row]
    end
    local problems = {}
    for _, v in ipairs(config.VARS) do
      local want = v.option and alloy.defaults[v.option] ~= nil and ("`" .. tostring(alloy.defaults[v.option]) .. "`")
        or v.field == "redirect_uri" and ("`" .. config.DEFAULTS.redirect_uri .. "`") or nil
      if not shown[v.var] then
        problems[#problems + 1] = v.var .. ": not in docs/configuration.md's table"
      elseif want and shown[v.var] ~= want then
        problems[#problems + 1] = ("%s: docs/configuration.md shows %s, the default is %s"):format(v.var, shown[v.var],
          want)
      end
    end
    assert.are.same({}, problems)
  end)

  it("states the retry rule as alloy.operations[op].retried does, for every operation", function()
    local alloy = require "alloy"
    local seen, problems = {}, {}
    for _, row in ipairs(table_rows(readme.section("docs/reliability.md", "## Retries"))) do
      local want = {}
      for _, c in ipairs(codes_in(row[2])) do want[c] = "always" end
      for _, c in ipairs(codes_in(row[3])) do want[c] = "with Retry-After" end
      for _, op in ipairs(codes_in(row[1])) do
        seen[op] = true
        local spec = alloy.operations[op]
        if not spec then
          problems[#problems + 1] = op .. ": no such operation"
        else
          for _, code in ipairs(sorted_keys(want)) do
            if spec.retried[code] ~= want[code] then
              problems[#problems + 1] = ("%s %s: docs say %s, alloy.operations has %s"):format(op, code, want[code],
                tostring(spec.retried[code]))
            end
          end
          for _, code in ipairs(sorted_keys(spec.retried)) do
            if not want[code] then problems[#problems + 1] = ("%s %s: not in the docs' row"):format(op, code) end
          end
        end
      end
    end
    for _, op in ipairs(sorted_keys(alloy.operations)) do
      if not seen[op] then problems[#problems + 1] = op .. ": in no row of docs/reliability.md's table" end
    end
    assert.are.same({}, problems)
  end)

  it("lists in the command table each row of alloy.commands, in its order", function()
    local commands = require "alloy.commands"
    local got, want = {}, {}
    for _, row in ipairs(table_rows(readme.section("docs/commands.md", "## The commands"))) do
      got[#got + 1] = table.concat({ row[2], row[3], row[4] }, " ")
    end
    for _, c in ipairs(commands.LIST) do
      if c.script then
        want[#want + 1] = ("`alloy %s` `lua5.4 lua/%s.lua` `%s`"):format(c.name, c.script, c.installed)
      else -- a command without a Node-era script: only under alloy
        want[#want + 1] = ("`alloy %s` `lua5.4 lua/alloy_main.lua %s` —"):format(c.name, c.name)
      end
    end
    assert.are.same(want, got)
  end)

  -- What each Lua file requires, as the tree of docs/development.md shows it and as the code
  -- does: at load time (a `local x = require ...` or `require ...` at the start of a line, or
  -- pcall(require, ...)) and on use (inside a function).
  it("draws the Lua layout as the code is: every file under lua/, with what it requires", function()
    local function code_requires(path)
      local top, lazy, out_top, out_lazy = {}, {}, {}, {}
      for line in io.lines(run.root .. "/" .. path) do
        local code = line:gsub("%-%-.*$", "")
        local at_load = code:match("^local [%w_, ]+=%s*require") or code:match("^require")
          or code:match("^pcall%(require")
        for _, pat in ipairs({ 'require%s*%(?%s*"([%w_%.]+)"', 'pcall%(require,%s*"([%w_%.]+)"' }) do
          for m in code:gmatch(pat) do (at_load and top or lazy)[m] = true end
        end
      end
      for m in pairs(top) do out_top[#out_top + 1] = m end
      for m in pairs(lazy) do if not top[m] then out_lazy[#out_lazy + 1] = m end end
      table.sort(out_top)
      table.sort(out_lazy)
      return table.concat(out_top, " "), table.concat(out_lazy, " ")
    end
    -- the tree: "├── name", its depth from its column (4 per level); "requires" and "on use"
    -- lists, which may go on over the lines after them
    local text = assert(readme.section("docs/development.md", "## The Lua layout"):match("\n```text\n(.-)\n```"))
    local drawn, dirs, current, list = {}, {}, nil, nil
    local function add(words)
      for m in words:gmatch("[%w_%.]+") do list[#list + 1] = m end
    end
    for line in text:gmatch("[^\n]+") do
      local before, name = line:match("^(.-)[├└]── (%S+)")
      local depth = before and math.floor(#before:gsub("[\128-\191]", "") / 4) + 1
      if not name and line:match("^%S+/$") then name, depth = line, 0 end
      local label, rest = line:match("^[│ ]*(requires)%s+(.*)$")
      if not label then label, rest = line:match("^[│ ]*(on use)%s+(.*)$") end
      if name and name:match("/$") then
        dirs[depth + 1], current, list = name, nil, nil
        for i = #dirs, depth + 2, -1 do dirs[i] = nil end
      elseif name then
        current, list = { {}, {} }, nil
        drawn[table.concat(dirs, "", 1, depth) .. name] = current
      elseif label and current then
        list = current[label == "requires" and 1 or 2]
        add(rest)
      elseif list then
        add(line)
      end
    end
    local problems = {}
    local files = ls("lua/*.lua lua/alloy/*.lua lua/alloy/cmd/*.lua")
    for _, f in ipairs(files) do
      local d = drawn[f] or (f:match("^lua/[^/]+%.lua$") and drawn["lua/<script>.lua"])
      if not d then
        problems[#problems + 1] = f .. ": not in docs/development.md's tree"
      else
        table.sort(d[1])
        table.sort(d[2])
        local top, lazy = code_requires(f)
        if table.concat(d[1], " ") ~= top then
          problems[#problems + 1] = ("%s requires %s; the tree says %s"):format(f, top, table.concat(d[1], " "))
        end
        if table.concat(d[2], " ") ~= lazy then
          problems[#problems + 1] = ("%s requires on use %s; the tree says %s"):format(f, lazy, table.concat(d[2], " "))
        end
      end
    end
    for path in pairs(drawn) do
      if path ~= "lua/<script>.lua" and not require("alloy").file_info(run.root .. "/" .. path) then
        problems[#problems + 1] = path .. ": in the tree, not in lua/"
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  it("adding a command: its module and one row make `alloy <name>` run, with help", function()
    local dir = run.tmpdir()
    assert(os.execute("cp -r " .. run.quote(run.root .. "/lua") .. " " .. run.quote(dir .. "/lua")))
    local section = readme.section("docs/development.md", "## Adding a command")
    local module = assert(section:match("\n   ```lua\n(.-)\n   ```"))
    run.write(dir .. "/lua/alloy/cmd/whoami.lua", (module:gsub("\n   ", "\n"):gsub("^   ", "")) .. "\n")
    local rows = run.read(dir .. "/lua/alloy/commands.lua")
    local changed, n = rows:gsub("\nM%.LIST = {\n", '%0  { name = "whoami" },\n', 1)
    assert.equal(1, n)
    run.write(dir .. "/lua/alloy/commands.lua", changed)
    local abi = run.lua:match("(lua5%.%d)$") or run.lua:match("(luajit)$") or "lua5.4"
    local env = { LUA_CPATH = run.root .. "/build/" .. abi .. "/?.so;;", ALLOY_API_KEY = "key-of-the-whoami-spec" }
    local r = run.script(dir .. "/lua/alloy_main.lua", { "whoami", "-u", "68c3229752345278627ae373" }, { env = env })
    local help = run.script(dir .. "/lua/alloy_main.lua", { "--help" }, { env = env })
    run.rmdir(dir)
    assert.equal(0, r.code, r.stderr)
    assert.equal("68c3229752345278627ae373\n", r.stdout)
    assert.matches("^from flag %-%-user; its token: %S+ " .. run.quote(dir .. "/lua/alloy_main.lua"):gsub("%p", "%%%0")
      .. " token %-u 68c3229752345278627ae373\n$", r.stderr)
    assert.matches("\n   whoami  +the user the configuration names\n", help.stdout)
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
