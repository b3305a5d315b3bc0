-- `make demo`: get a user JWT from a local Alloy sandbox with lua/get_jwt_token.lua.
-- Starts the sandbox, creates a user, writes a private .env (mode 0600) for the
-- script, runs it (its stdout/stderr pass straight through), stops the sandbox
-- and exits with the script's status. The API key only ever travels through
-- that file, never through a command line.
local root = (arg and arg[0] or ""):match("^(.*)/spec/sandbox/[^/]*$") or "."
package.path = root .. "/spec/support/?.lua;" .. package.path

local Sandbox = require "sandbox"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function say(...) io.stderr:write("demo: ", ...) io.stderr:write("\n") end

local lua = Sandbox.interpreter()
local script = root .. "/lua/get_jwt_token.lua"

local sb, tmpdir
local function cleanup()
  if tmpdir then os.execute("rm -rf " .. q(tmpdir)) tmpdir = nil end
  if sb then sb:stop() end
end

local ok, code = xpcall(function()
  if not io.open(script) then
    say("missing ", script)
    return 2
  end
  sb = Sandbox.start()
  local username = "demo-user"
  local user_id = sb:create_user { username = username, fullName = "Demo User" }
  say("sandbox Alloy API at ", sb.url, ", embedded host at ", sb.embedded_url, "; user ", username, " (", user_id, ")")

  -- mktemp -d is 0700 and umask 077 makes the file 0600 from its first byte.
  local p = assert(io.popen("mktemp -d -t alloy-demo.XXXXXXXX"))
  tmpdir = p:read("*l")
  p:close()
  assert(tmpdir and tmpdir ~= "", "mktemp -d failed")
  local env_file = tmpdir .. "/.env"
  assert(os.execute("umask 077 && : >" .. q(env_file)))
  local f = assert(io.open(env_file, "w"))
  f:write("ALLOY_API_KEY=", sb.api_key, "\n",
          "ALLOY_USER_ID=", user_id, "\n",
          "ALLOY_BASE_URL=", sb.url, "\n",
          "ALLOY_EMBEDDED_URL=", sb.embedded_url, "\n")
  f:close()

  say("running: ", lua, " lua/get_jwt_token.lua --env-file ", env_file)
  local _, how, status = os.execute(q(lua) .. " " .. q(script) .. " --env-file " .. q(env_file))
  if how == "signal" then return 128 + status end
  return status
end, debug.traceback)

cleanup()
if not ok then
  say("failed: ", tostring(code))
  os.exit(1)
end
os.exit(code or 1)
