-- `make sandbox`: the local Alloy in the foreground until Ctrl-C, to try every script against.
--
-- Seeds a user with one connection (the connectors are built into the sandbox), writes
-- .env.sandbox in the current directory (mode 0600, atomically; never .env, which may hold a
-- real key) and prints on stderr the commands to try. The key is never printed.
--
-- Stopping: Ctrl-C (SIGINT) stops nginx, removes its temp prefix and .env.sandbox, and exits 0.
-- SIGTERM, SIGHUP or SIGKILL end the interpreter at once; the watcher shells (they ignore INT,
-- TERM and HUP) see it go and do the same: nginx stopped, prefix and .env.sandbox removed.
local root = (arg and arg[0] or ""):match("^(.*)/spec/sandbox/[^/]*$") or "."
package.path = root .. "/spec/support/?.lua;" .. package.path

local Sandbox = require "sandbox"
local Nginx = require "nginx"

local ENV_FILE = ".env.sandbox"
local REDIRECT = "http://localhost:3000/oauth/callback"
local q = Nginx.quote

local function say(...) io.stderr:write(...) io.stderr:write("\n") end

-- Writes the env file atomically (a 0600 temp file beside it, then rename) and starts a shell
-- that removes it once this process is gone, if it still carries our marker (another sandbox
-- may have replaced it). -> the watcher's pipe: closing it removes the file.
local function write_env_file(vars, marker)
  local p = assert(io.popen("mktemp " .. q(ENV_FILE .. ".XXXXXXXX") .. " 2>/dev/null"))
  local tmp = p:read("*l")
  p:close()
  assert(tmp and tmp ~= "", "cannot create a file in the current directory")
  local f = assert(io.open(tmp, "w"))
  f:write("# ", marker, ": the local Alloy sandbox of `make sandbox`, not a real account.\n",
    "# Removed when that sandbox stops.\n")
  for _, kv in ipairs(vars) do f:write(kv[1], "=", kv[2], "\n") end
  f:close()
  -- whatever is there (a FIFO would block an open; a link is replaced, not followed):
  -- renaming a path onto itself succeeds exactly when it exists
  local replaced = os.rename(ENV_FILE, ENV_FILE)
  local moved, why = os.rename(tmp, ENV_FILE)
  if not moved then
    os.remove(tmp)
    error({ message = "cannot write " .. ENV_FILE .. ": " .. tostring(why) }, 0)
  end
  local watcher = assert(io.popen("exec >/dev/null 2>&1; trap '' INT TERM HUP; while read -r _; do :; done; "
    .. "grep -qF " .. q(marker) .. " " .. q(ENV_FILE) .. " && rm -f " .. q(ENV_FILE), "w"))
  return watcher, replaced and true or false
end

local sb, watcher
local ok, err = xpcall(function()
  local lua = Sandbox.interpreter()

  sb = Sandbox.start()
  local user = sb:create_user { username = "sandbox-user", fullName = "Sandbox User" }
  local cred = sb:create_credential { userId = user, connector = "slack", name = "Sandbox Slack workspace" }
  local connectors = {}
  for _, c in ipairs(sb:connectors()) do connectors[#connectors + 1] = c.id end

  local replaced
  watcher, replaced = write_env_file({
    { "ALLOY_API_KEY", sb.api_key }, { "ALLOY_USER_ID", user },
    { "ALLOY_BASE_URL", sb.url }, { "ALLOY_EMBEDDED_URL", sb.embedded_url }, { "CONNECTION_ID", cred.credentialId },
  }, "lua-alloy sandbox " .. Nginx.random_key(12))

  local script = (root == "." and "" or root .. "/") .. "lua/"
  local function cmd(name, extra) return lua .. " " .. script .. name .. " --env-file " .. ENV_FILE .. (extra or "") end
  -- our own pid (a wrapper such as fuzz/lua-asan may stand between the caller and us)
  local self_pid = Nginx.read("/proc/self/stat"):match("^%d+")
  say("sandbox: local Alloy at ", sb.url, ", its embedded host at ", sb.embedded_url, " (nginx pid ", sb.pid,
    ", prefix ", sb.dir, "); this process: pid ", self_pid)
  say("sandbox: user sandbox-user (", user, ") with one slack connection (", cred.credentialId, ");",
    " connectors: ", table.concat(connectors, ", "))
  say("sandbox: ", replaced and "replaced " or "wrote ", ENV_FILE, " (mode 0600): ALLOY_API_KEY (not shown),",
    " ALLOY_USER_ID, ALLOY_BASE_URL, ALLOY_EMBEDDED_URL, CONNECTION_ID (the slack connection)")
  say("")
  say("Try, in another terminal in this directory:")
  say("  ", cmd("get_jwt_token.lua"))
  say("  ", cmd("list_connections.lua"))
  say("  ", cmd("initiate_oauth.lua", " --connector notion --redirect-uri " .. REDIRECT))
  say("  ", cmd("test_oauth.lua", " --replace"))
  say("")
  say("The two OAuth commands print an oauthUrl and wait for the browser on ", REDIRECT, ".")
  say("(The second replaces the Notion connection the first made: without --replace or --new it")
  say("would stop there rather than make a second one.)")
  say("No browser needed: the sandbox's oauthUrl is an authorize page that redirects there, so in")
  say("a third terminal run")
  say("  curl -sL \"<oauthUrl>\"")
  say("and the command prints the new connection's id.")
  say("")
  say("Ctrl-C (or kill ", self_pid, ") stops the sandbox and removes ", ENV_FILE, ".")
  if sb.nginx:foreground() == "exited" then error("nginx exited on its own; error.log:\n" .. sb:error_log(), 0) end
end, function(e) return type(e) == "table" and e.message or debug.traceback(e) end)

if sb then sb:stop() end
if watcher then watcher:close() end -- the watcher removes the env file
if not ok then
  say("sandbox: failed: ", tostring(err))
  os.exit(1)
end
local left = io.open(ENV_FILE)
if left then left:close() end
say("sandbox: stopped (nginx gone, temp prefix removed, ", ENV_FILE,
  left and " left: another sandbox has replaced it)" or " removed)")
os.exit(0)
