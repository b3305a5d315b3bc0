-- Files: alloy.file_md5, client:put_file (the PUT to a presigned URL, a host that is not
-- Alloy), alloy upload and alloy files, against the sandbox's API and storage listeners over
-- real HTTP: what the storage host receives (the bytes, Content-Type, Content-MD5, nothing of
-- Alloy's), which URLs are refused, a file that changes between its MD5 and its PUT, a file
-- already there, and input refused before anything is sent.
local Sandbox = require "sandbox"
local run = require "run"
local readme = require "readme"
local cjson = require "cjson"
local alloy = require "alloy"

local HELLO_MD5 = { hex = "6f5902ac237024bdd0c176cb93063dc4", base64 = "b1kCrCNwJL3QwXbLkwY9xA==" } -- "hello world\n"

describe("files", function()
  local sb, uid, dir
  Sandbox.per_test_user("ada", function(s, u) sb, uid = s, u end)
  before_each(function() dir = run.tmpdir() end)
  after_each(function() run.rmdir(dir) end)

  local function alloy_cmd(args, o)
    o = o or {}
    return run.script("alloy_main", args, { env = run.env(sb, uid, o.extra), cwd = dir, tty = o.tty })
  end

  local function requests(host)
    local out = {}
    for _, r in ipairs(sb:requests()) do
      if r.host == host then out[#out + 1] = r end
    end
    return out
  end

  -- A presigned URL for path's current bytes, from the API (as ada).
  local function presigned(client, name, md5, mime)
    local body = assert(client:upload_request({ filename = name, mimeType = mime or "text/plain", md5 = md5 },
      { headers = { ["x-alloy-userid"] = uid } }))
    return body.presignedUrl
  end

  describe("alloy.file_md5", function()
    it("reads the file in blocks: hex, base64 and size, as md5sum has them", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      local m = assert(alloy.file_md5(dir .. "/hello.txt"))
      assert.same({ hex = HELLO_MD5.hex, base64 = HELLO_MD5.base64, size = 12 }, m)
      -- a file larger than a block, against md5sum
      local big = dir .. "/big.bin"
      assert(os.execute("head -c 300001 /dev/urandom > " .. run.quote(big)))
      local p = io.popen("md5sum " .. run.quote(big))
      local want = p:read("*l"):match("^(%x+)")
      p:close()
      local calls = {}
      local function progress(done, total) calls[#calls + 1] = done .. "/" .. total end
      m = assert(alloy.file_md5(big, { on_progress = progress }))
      assert.equal(want, m.hex)
      assert.equal(300001, m.size)
      assert.equal("0/300001", calls[1])
      assert.equal("300001/300001", calls[#calls])
      run.write(dir .. "/empty", "")
      assert.same({ hex = "d41d8cd98f00b204e9800998ecf8427e", base64 = "1B2M2Y8AsgTpgAmY7PhCfg==", size = 0 },
        assert(alloy.file_md5(dir .. "/empty")))
    end)

    it("refuses what is not a regular file without waiting on it (a FIFO has no writer here)", function()
      assert(os.execute("mkfifo " .. run.quote(dir .. "/fifo")))
      for _, path in ipairs({ dir .. "/fifo", dir, dir .. "/missing", "/dev/zero" }) do
        local m, msg, code = alloy.file_md5(path)
        assert.is_nil(m)
        assert.equal("FILE_READ", code, path)
        assert.matches("^FILE_READ: ", msg)
      end
      assert.has_error(function() alloy.file_md5(dir .. "/a\0b") end, "alloy.file_md5: path must not contain NUL")
      assert.has_error(function() alloy.file_md5(dir, { on_progres = print }) end,
        "alloy.file_md5: unknown option 'on_progres'")
    end)
  end)

  describe("client:put_file", function()
    local client
    before_each(function() client = sb:client() end)
    after_each(function() client:close() end)

    it("sends the bytes with Content-Type, Content-MD5 and Content-Length only: no key, no Alloy header", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      local p = presigned(client, "hello.txt", HELLO_MD5.hex)
      assert.equal("new", p.type)
      assert.equal(HELLO_MD5.base64, p.md5)
      local ua = sb:client { user_agent = "my-agent/1" } -- a client with every header it can add
      local res = assert(ua:put_file(p.presignedUrl, dir .. "/hello.txt", { content_type = "text/plain",
                                                                         md5 = p.md5 }))
      ua:close()
      assert.equal(200, res.status)
      assert.equal('"' .. HELLO_MD5.hex .. '"', res.headers.etag)
      assert.matches("X-Amz-Signature=[REDACTED]", res.url, 1, true)
      local put = requests("s3")
      assert.equal(1, #put)
      assert.equal("PUT", put[1].method)
      assert.equal("hello world\n", put[1].body)
      local names = {}
      for k in pairs(put[1].headers) do names[#names + 1] = k end
      table.sort(names)
      assert.same({ "content-length", "content-md5", "content-type", "host" }, names)
      assert.equal(HELLO_MD5.base64, put[1].headers["content-md5"])
      assert.equal("text/plain", put[1].headers["content-type"])
      for _, v in pairs(put[1].headers) do assert.is_nil(v:find(sb.api_key:sub(1, 8), 1, true)) end
      assert.is_nil((put[1].query .. put[1].path):find(sb.api_key:sub(1, 8), 1, true))
      assert.same({ { s3Key = uid .. "_hello.txt", filename = "hello.txt", size = 12 } },
        (function()
          local files = assert(require("alloy.uploads").list(client, uid))
          files[1].lastModified = nil
          return files
        end)())
    end)

    it("without md5, reads the file's MD5 first; the storage host's refusal is a failure, its URL masked", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      local p = presigned(client, "hello.txt", HELLO_MD5.base64, "text/plain")
      local res, msg, code = client:put_file(p.presignedUrl, dir .. "/hello.txt", { content_type = "text/html" })
      assert.is_nil(res)
      assert.equal("HTTP_403", code)
      assert.equal("HTTP_403: SignatureDoesNotMatch: Content-Type differs from the mimeType this URL was issued for"
        .. " (PUT /alloy-user-files/" .. uid .. "_hello.txt)", msg)
      local signature = p.presignedUrl:match("X%-Amz%-Signature=(%w+)")
      res = assert(client:put_file(p.presignedUrl, dir .. "/hello.txt", { content_type = "text/plain" }))
      assert.equal(200, res.status)
      assert.is_nil(res.url:find(signature, 1, true))
      -- every value but AWS's plain ones is masked, and so is a bare token
      local url = sb.s3_url .. "/alloy-user-files/x?opaque-token-123&X-Amz-Date=20251001T120000Z"
        .. "&X-Amz-Credential=AKIAEXAMPLE%2Fus-east-1&X-Amz-Signature=" .. signature
      local refused
      refused, msg, code, res = client:put_file(url, dir .. "/hello.txt")
      assert.is_nil(refused)
      assert.equal("HTTP_403", code, msg)
      assert.equal(sb.s3_url .. "/alloy-user-files/x?[REDACTED]&X-Amz-Date=20251001T120000Z"
        .. "&X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]", res.url)
    end)

    it("a file that changed since its MD5 is stopped before its last byte: FILE_CHANGED, nothing stored", function()
      local path = dir .. "/report.csv"
      run.write(path, string.rep("a,b,c\n", 50000)) -- 300 KB: many blocks
      local m = assert(alloy.file_md5(path))
      local p = presigned(client, "report.csv", m.base64, "text/csv")
      for _, changed in ipairs({ string.rep("a,b,c\n", 49999) .. "a,b,d\n", -- same size, other bytes
                                 string.rep("a,b,c\n", 49999),             -- shorter
                                 string.rep("a,b,c\n", 50001) }) do        -- longer
        run.write(path, changed)
        local res, msg, code = client:put_file(p.presignedUrl, path, { content_type = "text/csv", md5 = m.base64 })
        assert.is_nil(res)
        assert.equal("FILE_CHANGED", code, msg)
        assert.matches("changed while it was read", msg, 1, true)
      end
      assert.same({}, sb:state().objects)
      -- the same with an empty file, checked before anything is sent
      run.write(path, "")
      local res, _, code = client:put_file(p.presignedUrl, path, { content_type = "text/csv", md5 = m.base64 })
      assert.is_nil(res)
      assert.equal("FILE_CHANGED", code)
      run.write(path, string.rep("a,b,c\n", 50000)) -- as it was: accepted
      assert(client:put_file(p.presignedUrl, path, { content_type = "text/csv", md5 = m.base64 }))
      assert.equal(300000, sb:state().objects[1].size)
    end)

    it("a storage answer over max_body: BODY_TOO_LARGE, as for Alloy's own calls", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      local p = presigned(client, "hello.txt", HELLO_MD5.hex)
      -- chunked: no length up front, so the cap is met while the body is read
      sb:fault { path = "^/alloy%-user%-files/", status = 403, huge = 5000, chunked = true }
      local small = sb:client { max_body = 1024 }
      local res, msg, code = small:put_file(p.presignedUrl, dir .. "/hello.txt", { content_type = "text/plain" })
      assert.is_nil(res)
      assert.equal("BODY_TOO_LARGE", code, msg)
      sb:clear_faults()
    end)

    it("refuses a URL that is not https (http only on loopback), or that carries a user name: nothing sent", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      sb:clear_requests()
      local port = sb.s3_url:match(":(%d+)$")
      for _, url in ipairs({ "http://example.com/x", "http://10.0.0.1:" .. port .. "/x", "ftp://127.0.0.1/x",
                             "file:///etc/passwd", "http://user@127.0.0.1:" .. port .. "/x",
                             "http://127.0.0.1@example.com/x" }) do
        local res, msg, code = client:put_file(url, dir .. "/hello.txt")
        assert.is_nil(res)
        assert.equal("UNSAFE_URL", code, url .. ": " .. tostring(msg))
      end
      local res, _, code = client:put_file("not a url", dir .. "/hello.txt")
      assert.is_nil(res)
      assert.equal("URL_MALFORMAT", code)
      -- loopback by name works (the sandbox's stand-in); [::1] is allowed too
      local p = presigned(client, "hello.txt", HELLO_MD5.hex)
      assert(client:put_file(p.presignedUrl:gsub("127%.0%.0%.1", "localhost"), dir .. "/hello.txt",
        { content_type = "text/plain" }))
      assert.equal(1, #sb:requests() - 1) -- the upload request, then that one PUT
      assert.has_error(function() client:put_file(p.presignedUrl, dir .. "/hello.txt", { md5 = "abc" }) end,
        "client:put_file: md5 must be 32 hex digits or 24 base64 characters")
      assert.has_error(function()
        client:put_file(p.presignedUrl, dir .. "/hello.txt", { content_type = "a\r\nb: c" })
      end,
        "client:put_file: content_type must be 1 to 150 bytes without CR, LF or NUL")
      assert.has_error(function() client:put_file(p.presignedUrl, dir .. "/hello.txt", { type = "x" }) end,
        "client:put_file: unknown option 'type'")
    end)

    it("--verbose shows the exchange with the URL's signature masked", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      local p = presigned(client, "hello.txt", HELLO_MD5.hex)
      local signature = p.presignedUrl:match("X%-Amz%-Signature=(%w+)")
      local src = dir .. "/put.lua"
      local abi = run.lua:match("(lua5%.%d)$") or run.lua:match("(luajit)$") or "lua5.4"
      run.write(src, ([[
package.cpath = %q .. package.cpath
local c = require("alloy").new { api_key = os.getenv("ALLOY_API_KEY"), debug = true }
assert(c:put_file(%q, %q, { content_type = "text/plain" }))
print("done")
]]):format(run.root .. "/build/" .. abi .. "/?.so;", p.presignedUrl, dir .. "/hello.txt"))
      local r = run.script(src, {}, { env = run.env(sb, uid) })
      local err = r.stderr
      assert.equal(0, r.code, err)
      assert.equal("done\n", r.stdout)
      assert.matches("> PUT /alloy-user-files/" .. uid .. "_hello.txt?X-Amz-Expires=3600&X-Amz-Signature=[REDACTED]"
        .. " HTTP/1.1\n", err, 1, true)
      assert.matches("> Content-MD5: " .. HELLO_MD5.base64 .. "\n", err, 1, true)
      assert.is_nil(err:find(signature, 1, true))
      assert.is_nil(err:find("Authorization", 1, true))
    end)
  end)

  describe("alloy upload", function()
    it("an s3Key with a control, a C1 control or a bidi mark is refused: nothing printed, nothing sent", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      for _, key in ipairs({ "a\27[31mb", "a\194\155b", "a\226\128\174b" }) do
        sb:clear_requests()
        sb:fault { path = "^/connectors/files/upload/request$", status = 200,
                   body = { presignedUrl = { s3Key = key, type = "existing", md5 = HELLO_MD5.base64 } } }
        local r = alloy_cmd { "upload", "hello.txt" }
        assert.equal(1, r.code, r.stderr)
        assert.equal("", r.stdout)
        assert.matches("error: the API's upload answer has no usable s3Key (nothing was sent)", r.stderr, 1, true)
        assert.equal(0, #requests("s3"))
      end
    end)

    it("prints the s3Key; a file already there is not sent again, and says so", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      sb:clear_requests()
      local r = alloy_cmd { "upload", "hello.txt" }
      assert.equal(0, r.code, r.stderr)
      assert.equal(uid .. "_hello.txt\n", r.stdout)
      assert.matches("Uploaded hello.txt (12 bytes, text/plain, MD5 " .. HELLO_MD5.base64 .. ") for user " .. uid,
        r.stderr, 1, true)
      local api, s3 = requests("api"), requests("s3")
      assert.equal(1, #api)
      assert.equal(uid, api[1].headers["x-alloy-userid"])
      assert.same({ filename = "hello.txt", mimeType = "text/plain", md5 = HELLO_MD5.base64 },
        cjson.decode(api[1].body))
      assert.equal(1, #s3)
      assert.equal("hello world\n", s3[1].body)

      sb:clear_requests()
      r = alloy_cmd { "upload", "hello.txt", "--json" }
      assert.equal(0, r.code, r.stderr)
      local doc = cjson.decode(r.stdout)
      assert.same({ s3Key = uid .. "_hello.txt", type = "existing", sent = false, md5 = HELLO_MD5.base64, size = 12,
                    filename = "hello.txt", contentType = "text/plain" }, doc)
      assert.matches("Already there: hello.txt with MD5 " .. HELLO_MD5.base64 .. " (not sent again)", r.stderr, 1, true)
      assert.equal(0, #requests("s3"))

      -- under another name and type; then the list
      r = alloy_cmd { "upload", "hello.txt", "--name", "greeting", "--type", "application/octet-stream" }
      assert.equal(0, r.code, r.stderr)
      r = alloy_cmd { "files" }
      assert.equal(0, r.code, r.stderr)
      local rows = run.lines(r.stdout)
      assert.equal(2, #rows)
      assert.matches("^" .. uid .. "_hello%.txt\thello%.txt\t12\t%d%d%d%d%-%d%d%-%d%d %d%d:%d%d$", rows[1])
      assert.matches("^" .. uid .. "_greeting\tgreeting\t12\t", rows[2])
      assert.equal(2, cjson.decode(alloy_cmd({ "files", "--json" }).stdout).count)
      -- without a user: the API key's own files
      r = alloy_cmd({ "files" }, { extra = { ALLOY_USER_ID = false } })
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("0 files of the API key's own user", r.stderr, 1, true)
    end)

    it("a directory, a FIFO, a file it cannot read, a missing one: exit 2, one line, nothing sent", function()
      assert(os.execute("mkfifo " .. run.quote(dir .. "/fifo")))
      run.write(dir .. "/secret.txt", "x")
      os.execute("chmod 000 " .. run.quote(dir .. "/secret.txt"))
      local unreadable = not io.open(dir .. "/secret.txt", "rb") -- root reads anything
      sb:clear_requests()
      for _, c in ipairs({ { ".", "error: . is a directory, not a regular file: nothing was sent" },
                           { "fifo", "error: fifo is a fifo, not a regular file: nothing was sent" },
                           { "missing.txt", "error: cannot read missing.txt: no such file" },
                           { "/dev/null", "error: /dev/null is a device, not a regular file" },
                           unreadable and { "secret.txt", "error: cannot read secret.txt: Permission denied" } or nil,
                         }) do
        local r = alloy_cmd { "upload", c[1] }
        assert.equal(2, r.code, c[1] .. ": " .. r.stderr)
        assert.equal("", r.stdout)
        assert.matches(c[2], r.stderr, 1, true)
        assert.equal(2, #run.lines(r.stderr), r.stderr)
      end
      local r = alloy_cmd { "upload" }
      assert.equal(2, r.code)
      assert.same({}, sb:requests())
    end)

    it("a file changed between its MD5 and its PUT is not stored, and not reported done", function()
      local path = dir .. "/export.csv"
      run.write(path, string.rep("x", 100000))
      -- the upload request waits for the spec: the file changes at a known point of the run
      sb:fault { path = "^/connectors/files/upload/request$", hold = "md5 read" }
      local argv = { run.quote(run.lua), run.quote(run.root .. "/lua/alloy_main.lua"), "upload", "export.csv" }
      local h = run.spawn("alloy_main", { "upload", "export.csv" }, { env = run.env(sb, uid), cwd = dir,
        shell = table.concat(argv, " ") })
      assert.truthy(run.wait_for(function() return #requests("api") == 1 end, 20), "no upload request")
      run.write(path, string.rep("y", 100000))
      sb:release("md5 read")
      local r = h:wait()
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("error: FILE_CHANGED: export.csv changed while it was read", r.stderr, 1, true)
      assert.matches("hint: the file changed while it was read, and nothing was stored", r.stderr, 1, true)
      assert.same({}, sb:state().objects)
    end)

    it("Ctrl-C while the storage host has not answered: exit 130, nothing reported done", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      sb:fault { host = "s3", hold = "never" } -- the PUT's answer never comes
      finally(function() sb:release("never") end)
      local argv = { run.quote(run.lua), run.quote(run.root .. "/lua/alloy_main.lua"), "upload", "hello.txt" }
      local h = run.spawn("alloy_main", { "upload", "hello.txt" }, { env = run.env(sb, uid), cwd = dir,
        shell = "setsid " .. table.concat(argv, " ") .. ' & echo "pid $!"; wait $!' })
      local pid = assert(h:line():match("^pid (%d+)$"))
      finally(function()
        if run.alive(pid) then os.execute("kill -KILL -" .. pid) end
        h:wait()
      end)
      assert.truthy(run.wait_for(function() return #requests("s3") == 1 end, 20), "no PUT")
      os.execute("kill -INT -" .. pid)
      assert.truthy(run.wait_for(function() return not run.alive(pid) end, 10), "still running after Ctrl-C")
      local r = h:wait()
      assert.equal(130, r.code, r.stderr)
      assert.equal("", (r.stdout:gsub("^pid %d+\n", "")))
      assert.same({ "interrupted" }, run.lines(r.stderr))
    end)

    it("the URL's query never shows, even with --verbose and a refusal", function()
      run.write(dir .. "/hello.txt", "hello world\n")
      sb:fault { host = "s3", status = 403, body = "<Error><Code>AccessDenied</Code><Message>Request has expired"
        .. "</Message></Error>" }
      local r = alloy_cmd { "upload", "hello.txt", "--verbose" }
      assert.equal(1, r.code)
      assert.matches("error: HTTP_403: AccessDenied: Request has expired (PUT /alloy-user-files/" .. uid
        .. "_hello.txt)\nhint: the storage host refused the upload", r.stderr, 1, true)
      local signature
      for _, req in ipairs(requests("s3")) do signature = req.query:match("X%-Amz%-Signature=(%w+)") end
      assert.truthy(signature)
      assert.is_nil(r.stderr:find(signature, 1, true))
      assert.matches("X-Amz-Signature=[REDACTED]", r.stderr, 1, true)
    end)

    it("shows its progress on a terminal for a large file", function()
      assert(os.execute("head -c 5000000 /dev/zero > " .. run.quote(dir .. "/big.bin")))
      local r = alloy_cmd({ "upload", "big.bin" }, { tty = true })
      assert.equal(0, r.code, r.stdout)
      assert.matches("reading big.bin: 4.8 MiB of 4.8 MiB (100%)", r.stdout, 1, true)
      assert.matches("uploading big.bin: 4.8 MiB of 4.8 MiB (100%)", r.stdout, 1, true)
      assert.matches("\27[K" .. uid .. "_big.bin\n", r.stdout, 1, true) -- the progress line cleared first
      assert.equal(5000000, sb:state().objects[1].size)
    end)
  end)
  it("docs/commands.md's commands run as printed", function()
    local env = run.env(sb, uid)
    local out, err, code = readme.run("lua5.4 lua/alloy_main.lua upload report.csv --type text/csv",
      { env = env, files = { ["report.csv"] = "a,b\n1,2\n" } })
    assert.equal(0, code, err)
    assert.equal(uid .. "_report.csv\n", out)
    assert.equal("text/csv", sb:state().objects[1].contentType)
    out, err, code = readme.run("lua5.4 lua/alloy_main.lua files | cut -f1", { env = env })
    assert.equal(0, code, err)
    assert.equal(uid .. "_report.csv\n", out)
  end)
end)
