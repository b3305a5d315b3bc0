-- alloy.config: the scripts' configuration.
--
-- Precedence: command-line flags > environment > .env file (./.env, or --env-file) >
-- defaults.  An empty value counts as unset.  ALLOY_API_KEY has no flag on purpose: a
-- command line is visible to every user of the machine (ps, /proc/*/cmdline).
--
-- Variables                  flag               default
--   ALLOY_API_KEY            (none)             (required)
--   ALLOY_USER_ID            --user             (required by the scripts that need a user)
--   ALLOY_BASE_URL           --base-url         https://production.runalloy.com
--   ALLOY_EMBEDDED_URL       --embedded-url     https://embedded.runalloy.com
--   ALLOY_API_VERSION        --api-version      2025-09
--   CONNECTION_ID            --connection-id
--   REDIRECT_URI             --redirect-uri
--   ALLOY_TIMEOUT            (none)             30    seconds per HTTP request (fractions ok)
--   ALLOY_RETRIES            (none)             2     retries of 429/502/503/504/connection errors
--   ALLOY_BACKOFF            (none)             0.5   seconds, base of the exponential backoff
--   ALLOY_CA_FILE            (none)             CURL_CA_BUNDLE, else the system CA bundle
--
-- M.load{ flags = {user=, env_file=, ...}, getenv = os.getenv }
--   -> cfg | nil, msg, hint           (errors are configuration errors: exit 2)
-- cfg.<field>, cfg.source.<field> ("flag --user", "environment", ".env (path)", "default"),
-- cfg.env_file (the file read, if any), cfg.warnings (array of strings).

local M = {}

M.VARS = {
  { field = "api_key", var = "ALLOY_API_KEY" },
  { field = "user_id", var = "ALLOY_USER_ID", flag = "user" },
  { field = "base_url", var = "ALLOY_BASE_URL", flag = "base_url", kind = "url",
    default = "https://production.runalloy.com" },
  { field = "embedded_url", var = "ALLOY_EMBEDDED_URL", flag = "embedded_url", kind = "url",
    default = "https://embedded.runalloy.com" },
  { field = "api_version", var = "ALLOY_API_VERSION", flag = "api_version", default = "2025-09", kind = "version" },
  { field = "connection_id", var = "CONNECTION_ID", flag = "connection_id" },
  { field = "redirect_uri", var = "REDIRECT_URI", flag = "redirect_uri" },
  { field = "timeout", var = "ALLOY_TIMEOUT", default = "30", kind = "seconds" },
  { field = "retries", var = "ALLOY_RETRIES", default = "2", kind = "count" },
  { field = "backoff", var = "ALLOY_BACKOFF", default = "0.5", kind = "seconds0" },
  { field = "ca_file", var = "ALLOY_CA_FILE", alt = "CURL_CA_BUNDLE", kind = "file" },
}

local function flag_name(f)
  return "--" .. f:gsub("_", "-")
end

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
  return nil
end

local function check(spec, value, where)
  local kind = spec.kind
  if kind == "url" then
    if not value:match("^https?://[^/%s]+") or value:match("%s") then
      return nil, ("%s (%s) must be an http:// or https:// URL, got %q"):format(spec.var, where, value)
    end
    return (value:gsub("/+$", ""))
  elseif kind == "version" then
    if not value:match("^%d%d%d%d%-%d%d$") then
      return nil, ("%s (%s) must look like 2025-09, got %q"):format(spec.var, where, value)
    end
  elseif kind == "seconds" or kind == "seconds0" then
    local n = tonumber(value)
    if not n or n ~= n or n < 0 or (kind == "seconds" and n == 0) or n == math.huge then
      return nil, ("%s (%s) must be a %s number of seconds, got %q"):format(
        spec.var, where, kind == "seconds" and "positive" or "non-negative", value)
    end
    return n
  elseif kind == "file" then
    local f = io.open(value, "rb")
    if not f then
      return nil, ("%s (%s) names a file that cannot be read: %s"):format(spec.var, where, value)
    end
    f:close()
  elseif kind == "count" then
    local n = tonumber(value)
    if not n or n < 0 or n ~= math.floor(n) or n > 100 then
      return nil, ("%s (%s) must be a whole number 0..100, got %q"):format(spec.var, where, value)
    end
    return n
  end
  return value
end

-- True when the octal mode string lets group or others read the file.
function M.readable_by_others(mode)
  if not mode or #mode < 3 then return false end
  local g, o = tonumber(mode:sub(-2, -2)), tonumber(mode:sub(-1))
  return (g and g >= 4) or (o and o >= 4) or false
end

function M.load(opts)
  opts = opts or {}
  local flags = opts.flags or {}
  local getenv = opts.getenv or os.getenv
  local cfg = { source = {}, warnings = {} }

  -- the .env file: --env-file must exist; ./.env is optional
  local env_path = nonempty(flags.env_file) or ".env"
  local filevars = {}
  -- the parser is loaded only when there is a file to parse (start-up time of a plain call)
  local vars, err, errno
  local probe = io.open(env_path, "rb")
  if probe or nonempty(flags.env_file) then
    if probe then probe:close() end
    vars, err, errno = require("alloy.dotenv").load(env_path)
  else
    errno = "ENOENT"
  end
  if vars then
    filevars = vars
    cfg.env_file = env_path
    if nonempty(vars.ALLOY_API_KEY) then
      local mode = require("alloy.dotenv").mode(env_path)
      if M.readable_by_others(mode) then
        cfg.warnings[#cfg.warnings + 1] =
          ("%s holds ALLOY_API_KEY and is readable by other users (mode %s); run: chmod 600 %s")
          :format(env_path, mode, env_path)
      end
    end
  elseif errno == "ENOENT" and not nonempty(flags.env_file) then
    cfg.env_file = nil
  elseif errno then
    return nil, ("cannot read the env file: %s"):format(err),
      "--env-file must name a readable file (default: .env in the current directory)"
  else
    return nil, err, "fix that line of the .env file (KEY=value, quotes for values with blanks or #)"
  end
  cfg.env_path = env_path

  for _, spec in ipairs(M.VARS) do
    local value, where
    if spec.flag and nonempty(flags[spec.flag]) then
      value, where = flags[spec.flag], "flag " .. flag_name(spec.flag)
    elseif nonempty(getenv(spec.var)) then
      value, where = getenv(spec.var), "environment"
    elseif nonempty(filevars[spec.var]) then
      value, where = filevars[spec.var], env_path
    elseif spec.alt and nonempty(getenv(spec.alt)) then
      value, where = getenv(spec.alt), "environment " .. spec.alt
    elseif spec.default then
      value, where = spec.default, "default"
    end
    if value ~= nil then
      local v, cerr = check(spec, value, where)
      if v == nil then
        return nil, cerr, ("fix %s where it is set (%s)"):format(spec.var, where)
      end
      cfg[spec.field] = v
      cfg.source[spec.field] = where
    end
  end
  return cfg
end

-- Where a variable can be set, for "missing" messages.
function M.where_to_set(cfg, var, flag)
  local parts = {}
  if flag then parts[#parts + 1] = "pass " .. flag end
  parts[#parts + 1] = "export " .. var .. "=... in the environment"
  parts[#parts + 1] = ("add %s=... to %s"):format(var, cfg and cfg.env_path or ".env")
  return table.concat(parts, ", or ")
end

-- Options for alloy.new (never logged: it holds the key).
function M.client_options(cfg, extra)
  local o = {
    api_key = cfg.api_key,
    api_version = cfg.api_version,
    base_url = cfg.base_url,
    embedded_url = cfg.embedded_url,
    timeout = cfg.timeout,
    connect_timeout = math.min(10, cfg.timeout),
    retries = cfg.retries,
    backoff = cfg.backoff,
    ca_file = cfg.ca_file,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Human-readable description of the configuration; the key is shown only as "set".
function M.describe(cfg)
  local lines = {}
  for _, spec in ipairs(M.VARS) do
    local v = cfg[spec.field]
    if v ~= nil then
      local shown = spec.field == "api_key" and ("set (%d characters)"):format(#v) or tostring(v)
      lines[#lines + 1] = ("%-19s %s  [%s]"):format(spec.var, shown, cfg.source[spec.field])
    end
  end
  return lines
end

return M
