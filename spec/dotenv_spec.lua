-- alloy.dotenv: .env parsing and writing, and the odd kinds of file a .env can be.
local dotenv = require "alloy.dotenv"
local run = require "run"

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
    assert.equal("e:2: invalid variable name (letters, digits and _ only, not starting with a digit)", err)
  end)

  it("a parse error names the line, never its text (it may be a secret)", function()
    local secret = "sk_live/Ab+Cd9Ef=Gh"
    for _, text in ipairs {
      "ALLOY_API_KEY=\n" .. secret .. "\n",
      "ALLOY_API_KEY=\n" .. secret .. "==\n",
      "ALLOY_API_KEY=\n  " .. secret .. " = x\n",
      "A=1\n" .. secret .. ": x\n",
      "A=1\n'" .. secret .. "\n",
      'A="' .. secret .. '" ' .. secret .. "\n",
      "A='" .. secret .. "\n",
      "export " .. secret .. "=1\n",
      "9" .. secret .. "=1\n",
    } do
      local v, err = dotenv.parse(text, "e")
      assert.is_nil(v, text)
      assert.matches("^e:%d+: ", err)
      for i = 1, #secret - 5 do
        assert.is_nil(err:find(secret:sub(i, i + 5), 1, true), err)
      end
    end
  end)
end)

describe("alloy.dotenv files (set, load)", function()
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

  local function listing(of)
    local p = io.popen("ls -A " .. run.quote(of or dir))
    local text = p:read("*a")
    p:close()
    return text
  end

  local function kind(path)
    return require("alloy").file_info(path).type
  end

  it("never hands a path to a shell", function()
    local sub = dir .. "/it's $(touch pwned) `touch pwned2`; x"
    assert(os.execute("mkdir " .. run.quote(sub)))
    local path = sub .. "/.env"
    assert(dotenv.set(path, "A", "1"))
    assert.equal("A=1\n", run.read(path))
    assert.equal("600", dotenv.mode(path))
    assert(dotenv.set(path, "A", "2"))
    assert.equal("A=2\n", run.read(path))
    assert.equal(".env\n", listing(sub), "no temp file left")
    assert.is_nil(io.open(dir .. "/pwned", "rb"))
    assert.is_nil(io.open("pwned", "rb"))
    assert.is_nil(io.open("pwned2", "rb"))
  end)

  it("refuses to replace a symlink with a file: the link and its target stay as they were", function()
    run.write(dir .. "/real.env", "A=1\n", "600")
    assert(os.execute("ln -s real.env " .. run.quote(dir .. "/.env")))
    local ok, err = dotenv.set(dir .. "/.env", "A", "2")
    assert.is_nil(ok)
    assert.equal(dir .. "/.env is a symbolic link, which would be replaced by a plain file (edit its target instead)",
      err)
    assert.equal("link", kind(dir .. "/.env"))
    assert.equal("A=1\n", run.read(dir .. "/real.env"))
    assert.equal(".env\nreal.env\n", listing())
  end)

  it("refuses a directory or a FIFO in place of the file, and leaves it", function()
    assert(os.execute("mkfifo " .. run.quote(dir .. "/fifo.env") .. " && mkdir " .. run.quote(dir .. "/dir.env")))
    local ok, err = dotenv.set(dir .. "/fifo.env", "A", "1")
    assert.is_nil(ok)
    assert.equal(dir .. "/fifo.env is a FIFO, not a regular file", err)
    ok, err = dotenv.set(dir .. "/dir.env", "A", "1")
    assert.is_nil(ok)
    assert.equal(dir .. "/dir.env is a directory, not a regular file", err)
    assert.equal("fifo", kind(dir .. "/fifo.env"))
    assert.equal("directory", kind(dir .. "/dir.env"))
    assert.equal("dir.env\nfifo.env\n", listing())
  end)

  it("load reads through a symlink, and names a missing file ENOENT", function()
    run.write(dir .. "/real.env", "A=1\n")
    assert(os.execute("ln -s real.env " .. run.quote(dir .. "/.env")))
    assert.same({ A = "1" }, (dotenv.load(dir .. "/.env")))
    local vars, err, errno = dotenv.load(dir .. "/missing.env")
    assert.is_nil(vars)
    assert.matches("missing.env", err, 1, true)
    assert.equal("ENOENT", errno)
  end)

  it("set writes hostile values so that a shell sourcing the file and load both get them back as they were",
    function()
      local path = dir .. "/.env"
      local pwned = dir .. "/pwned"
      for _, value in ipairs {
        "$(touch " .. pwned .. ")", "`touch " .. pwned .. "`", "a\\b", "it's", 'say "hi"', "$HOME", "x\ny",
        "'$(touch " .. pwned .. ")'", "\"$(touch " .. pwned .. ")\"", "a b $(touch " .. pwned .. ") 'q'",
        "tab\there", "back\\`touch " .. pwned .. "`", "${HOME}",
      } do
        assert(dotenv.set(path, "A", value))
        assert.equal(value, dotenv.load(path).A)
        local p = io.popen("cd " .. run.quote(dir) .. " && env -i sh -c '. ./.env; printf %s \"$A\"'")
        local got = p:read("*a")
        p:close()
        assert.equal(value, got)
        assert.is_nil(io.open(pwned, "rb"), value)
      end
      -- what has no safe written form is refused, and the file is left as it was
      local before = run.read(path)
      for _, value in ipairs { "a\rb", "\27[2J", "nul\0x", "del\127" } do
        local ok, err = dotenv.set(path, "A", value)
        assert.is_nil(ok)
        assert.equal("the value for A has control characters; not written to " .. path, err)
        assert.equal(before, run.read(path))
      end
    end)

  it("load refuses what is not a regular file, through a symlink too, with one line and no ENOENT", function()
    local function q(p) return run.quote(dir .. "/" .. p) end
    assert(os.execute("mkfifo " .. q("f") .. " && mkdir " .. q("d") .. " && ln -s /dev/zero " .. q("zero")
      .. " && ln -s f " .. q("to-fifo") .. " && ln -s d " .. q("to-dir") .. " && ln -s nowhere " .. q("dangling")
      .. " && ln -s loop " .. q("loop") .. " && ln -s dangling/x " .. q("deeper")))
    run.write(dir .. "/big", string.rep("# comment\n", 110000))
    assert(os.execute("ln -s big " .. q("to-big")))
    for name, want in pairs {
      zero = "zero is a device (through a symbolic link), not a regular file",
      ["to-fifo"] = "to-fifo is a FIFO (through a symbolic link), not a regular file",
      ["to-dir"] = "to-dir is a directory (through a symbolic link), not a regular file",
      dangling = "dangling is a symbolic link to nothing (its target does not exist)",
      deeper = "deeper is a symbolic link to nothing (its target does not exist)",
      loop = "loop is a symbolic link that loops",
      big = "big is larger than 1048576 bytes: not an env file",
      ["to-big"] = "to-big is larger than 1048576 bytes (through a symbolic link): not an env file",
    } do
      local vars, err, errno = dotenv.load(dir .. "/" .. name)
      assert.is_nil(vars, name)
      assert.equal(dir .. "/" .. want, err)
      assert.not_equal("ENOENT", errno, name)
    end
  end)

  it("load refuses a FIFO (without blocking), a directory and a socket with one line", function()
    assert(os.execute("mkfifo " .. run.quote(dir .. "/f") .. " && mkdir " .. run.quote(dir .. "/d")))
    local server = require("socket.unix")()
    assert(server:bind(dir .. "/s"))
    for name, what in pairs({ f = "a FIFO", d = "a directory", s = "a socket" }) do
      local vars, err = dotenv.load(dir .. "/" .. name)
      assert.is_nil(vars)
      assert.equal(dir .. "/" .. name .. " is " .. what .. ", not a regular file", err)
    end
    server:close()
  end)
end)
