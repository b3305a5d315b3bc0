-- The bytecode `make` precompiles (build/<abi>/luac, tools/precompile.lua): a script loads a
-- module from it while the module's source is exactly what it was made from, and from the
-- source as soon as that changes ("flows can be changed without recompiling"). Each case
-- runs a copy of the checkout's lua/ and build/<abi>/ in a temp directory, as a user runs it.
local run = require "run"

local ABI = run.lua:match("(lua5%.%d)$") or run.lua:match("(luajit)$") or "lua5.4"

describe("precompiled modules #scripts", function()
  teardown(run.check_scripts_only)
  local dir
  before_each(function()
    dir = run.tmpdir()
    os.execute(("mkdir -p %s/build && cp -r %s/lua %s/ && cp -r %s/build/%s %s/build/"):format(run.quote(dir),
      run.quote(run.root), run.quote(dir), run.quote(run.root), ABI, run.quote(dir)))
  end)
  after_each(function() run.rmdir(dir) end)

  local function version()
    return run.script(dir .. "/lua/alloy_main.lua", { "--version" }, { cwd = dir })
  end

  -- Writes the cache entry of module `name` as tools/precompile.lua does, but with the bytecode
  -- of `code` after the copy of the module's real source (in lua/ and build/<abi>/luac/, or in
  -- the modules' and the cache's directories given).
  local function entry(name, code, modules, cache)
    local path = (modules or dir .. "/lua") .. "/" .. name:gsub("%.", "/") .. ".lua"
    local source = run.read(path)
    -- the bytecode must be the interpreter's the scripts run on: compile it there
    local src = dir .. "/dump.lua"
    run.write(src, ([[
      local f = assert((loadstring or load)(%q))
      io.stdout:write(string.dump(f))
    ]]):format(code))
    local r = run.script(src, {}, {})
    assert.equal(0, r.code, r.stderr)
    run.write((cache or dir .. "/build/" .. ABI .. "/luac") .. "/" .. name:gsub("%.", "/") .. ".luac",
      ("alloy-luac %d\n"):format(#source) .. source .. r.stdout)
  end

  it("make wrote one entry a module, argparse included, and an index", function()
    for _, name in ipairs { "alloy/main", "alloy/cmd/token", "alloy/parser", "argparse" } do
      local blob = run.read(dir .. "/build/" .. ABI .. "/luac/" .. name .. ".luac")
      assert.matches("^alloy%-luac %d+\n", blob, nil, name)
    end
    assert.is_truthy(run.read(dir .. "/build/" .. ABI .. "/luac/index"):match("^%d+\n$"))
  end)

  it("a module whose source is unchanged loads from its bytecode", function()
    entry("alloy.parser", [[
      local M = {}
      function M.version_line() return "from the bytecode" end
      return M
    ]])
    local r = version()
    assert.equal(0, r.code, r.stderr)
    assert.equal("from the bytecode\n", r.stdout)
  end)

  it("a module whose source changed loads from the source, the bytecode left alone", function()
    entry("alloy.parser", [[
      local M = {}
      function M.version_line() return "from the bytecode" end
      return M
    ]])
    local path = dir .. "/lua/alloy/parser.lua"
    run.write(path, (run.read(path):gsub("function M%.version_line%(name%)",
      "function M.version_line(name) do return 'edited: ' .. name end")))
    local r = version()
    assert.equal(0, r.code, r.stderr)
    assert.matches("^edited: ", r.stdout)
  end)

  it("without the cache, or with a broken entry, every module loads from its source", function()
    local cached = dir .. "/build/" .. ABI .. "/luac/alloy/parser.luac"
    run.write(cached, "alloy-luac 3\nabcgarbage")
    local r = version()
    assert.equal(0, r.code, r.stderr)
    assert.matches("%(lua%-alloy ", r.stdout)
    -- the source as made, then text where the bytecode goes: never run as code
    local source = run.read(dir .. "/lua/alloy/parser.lua")
    run.write(cached, ("alloy-luac %d\n"):format(#source) .. source .. "return { version_line = error }")
    r = version()
    assert.equal(0, r.code, r.stderr)
    assert.matches("%(lua%-alloy ", r.stdout)
    -- a good entry, but no index: the cache is not used at all
    entry("alloy.parser", [[
      local M = {}
      function M.version_line() return "from the bytecode" end
      return M
    ]])
    assert.equal("from the bytecode\n", version().stdout)
    os.remove(dir .. "/build/" .. ABI .. "/luac/index")
    r = version()
    assert.equal(0, r.code, r.stderr)
    assert.matches("%(lua%-alloy ", r.stdout)
  end)

  it("installed by make install: the commands load from the bytecode installed beside the modules", function()
    local prefix = dir .. "/prefix"
    local r = run.script("make install", {}, { cwd = run.root,
      shell = "make --no-print-directory install LUA=" .. ABI .. " PREFIX=" .. run.quote(prefix) })
    assert.equal(0, r.code, r.stderr)
    local p = io.popen("ls -d " .. run.quote(prefix) .. "/share/lua/*/alloy")
    local modules = p:read("*l"):match("^(.*)/alloy$")
    p:close()
    assert.is_truthy(run.read(modules .. "/alloy/luac/index"):match("^%d+\n$"))
    local function installed_version()
      return run.script(prefix .. "/bin/alloy", { "--version" }, { cwd = dir,
        shell = run.quote(prefix .. "/bin/alloy") .. " --version" })
    end
    r = installed_version()
    assert.equal(0, r.code, r.stderr)
    assert.matches("^alloy %(lua%-alloy ", r.stdout)
    entry("alloy.parser", [[
      local M = {}
      function M.version_line() return "from the installed bytecode" end
      return M
    ]], modules, modules .. "/alloy/luac")
    r = installed_version()
    assert.equal(0, r.code, r.stderr)
    assert.equal("from the installed bytecode\n", r.stdout)
  end)
end)
