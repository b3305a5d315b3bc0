-- alloy.config: the scripts' configuration.
--
-- Precedence: command-line flags > environment > .env file (./.env, or --env-file) >
-- defaults.  An empty value counts as unset.  ALLOY_API_KEY has no flag on purpose: a
-- command line is visible to every user of the machine (ps, /proc/*/cmdline).
--
-- Variables                  flag               alloy.new option (its default and its rule)
--   ALLOY_API_KEY            (none)             api_key (required)
--   ALLOY_USER_ID            --user             (required by the scripts that need a user)
--   ALLOY_BASE_URL           --base-url         base_url
--   ALLOY_EMBEDDED_URL       --embedded-url     embedded_url
--   ALLOY_API_VERSION        --api-version      api_version
--   CONNECTION_ID            --connection-id
--   REDIRECT_URI             --redirect-uri
--   ALLOY_TIMEOUT            (none)             timeout, seconds per HTTP request
--   ALLOY_RETRIES            (none)             retries of 429/502/503/504/connection errors
--   ALLOY_BACKOFF            (none)             backoff, seconds, base of the exponential backoff
--   ALLOY_CA_FILE            (none)             ca_file; else CURL_CA_BUNDLE, else the system bundle
-- Defaults and rules are alloy.so's (alloy.defaults, alloy.check_option), stated once in C.
--
-- M.load{ flags = {user=, env_file=, ...}, getenv = os.getenv }
--   -> cfg | nil, err (an alloy.failure; configuration errors: status 2)
-- cfg.<field>, cfg.source.<field> ("flag --user", "environment", ".env (path)", "default"),
-- cfg.env_file (the file read, if any), cfg.warnings (array of strings: a .env holding the
-- key that others can read, or that git would commit).
-- M.alloy() -> the alloy module | nil, err (not built: the hint says how to build it)

local failure = require "alloy.failure"

local M = {}

local VARS = {
  { field = "api_key", var = "ALLOY_API_KEY" },
  { field = "user_id", var = "ALLOY_USER_ID", flag = "user" },
  { field = "base_url", var = "ALLOY_BASE_URL", flag = "base_url", option = "base_url" },
  { field = "embedded_url", var = "ALLOY_EMBEDDED_URL", flag = "embedded_url", option = "embedded_url" },
  { field = "api_version", var = "ALLOY_API_VERSION", flag = "api_version", option = "api_version" },
  { field = "region", var = "ALLOY_REGION", flag = "region", region = true },
  { field = "connection_id", var = "CONNECTION_ID", flag = "connection_id" },
  { field = "redirect_uri", var = "REDIRECT_URI", flag = "redirect_uri" },
  { field = "timeout", var = "ALLOY_TIMEOUT", option = "timeout", number = true },
  { field = "retries", var = "ALLOY_RETRIES", option = "retries", number = true },
  { field = "backoff", var = "ALLOY_BACKOFF", option = "backoff", number = true },
  { field = "ca_file", var = "ALLOY_CA_FILE", alt = "CURL_CA_BUNDLE", option = "ca_file", file = true },
}

-- Regions and the embedded host of each: the EU host is the Node SDK's (eu-embedded).
M.REGIONS = { us = false, eu = "https://eu-embedded.runalloy.com" }

local function flag_name(f)
  return "--" .. f:gsub("_", "-")
end

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
  return nil
end

function M.alloy()
  local ok, mod = pcall(require, "alloy")
  if not ok or type(mod) ~= "table" or not mod.new then
    return nil, failure.usage("cannot load alloy.so: " .. tostring(mod):match("^[^\n]*"),
      "run `make` in the lua-alloy checkout (it builds build/<lua>/alloy.so), or install it with luarocks")
  end
  return mod
end

-- A CA file must be a readable file (not a FIFO, which would block, nor a directory).
local function check_file(path)
  local info, msg, errno = require("alloy.dotenv").readable_kind(path)
  if not info and errno == "EINVAL" then return nil, ": " .. msg end
  local f = info and io.open(path, "rb")
  if not f then return nil, " names a file that cannot be read: " .. path end
  f:close()
  return path
end

-- The value of one variable, checked by alloy.so's rule for its option.  -> value | nil, msg
local function check(alloy, spec, value, where)
  if spec.option then
    local v, msg = alloy.check_option(spec.option, spec.number and tonumber(value) or value)
    if v == nil then return nil, ("%s (%s): %s"):format(spec.var, where, msg) end
    value = v
  end
  if spec.region then
    value = value:lower()
    if not M.REGIONS[value] then return nil, ("%s (%s): must be us or eu, not %q"):format(spec.var, where, value) end
  end
  if spec.file then
    local ok, msg = check_file(value)
    if not ok then return nil, ("%s (%s)%s"):format(spec.var, where, msg) end
  end
  return value
end

function M.load(opts)
  opts = opts or {}
  local flags = opts.flags or {}
  local getenv = opts.getenv or os.getenv
  local alloy, aerr = M.alloy()
  if not alloy then return nil, aerr end
  local cfg = { source = {}, warnings = {} }

  -- the .env file: --env-file must exist; ./.env is optional
  local env_path = nonempty(flags.env_file) or ".env"
  local filevars = {}
  -- the parser is loaded only when there is a file to parse (start-up time of a plain call)
  local vars, err, errno
  if alloy.file_info(env_path) or nonempty(flags.env_file) then
    vars, err, errno = require("alloy.dotenv").load(env_path)
  else
    errno = "ENOENT"
  end
  if vars then
    filevars = vars
    cfg.env_file = env_path
    if nonempty(vars.ALLOY_API_KEY) then
      for _, w in ipairs(require("alloy.dotenv").exposed(env_path)) do cfg.warnings[#cfg.warnings + 1] = w end
    end
  elseif errno == "ENOENT" and not nonempty(flags.env_file) then
    cfg.env_file = nil
  elseif errno then
    return nil, failure.usage(("cannot read the env file: %s"):format(err),
      "--env-file must name a readable file (default: .env in the current directory)")
  else
    return nil, failure.usage(err, "fix that line of the .env file (KEY=value, quotes for values with blanks or #)")
  end
  cfg.env_path = env_path

  for _, spec in ipairs(VARS) do
    local value, where
    if spec.flag and nonempty(flags[spec.flag]) then
      value, where = flags[spec.flag], "flag " .. flag_name(spec.flag)
    elseif nonempty(getenv(spec.var)) then
      value, where = getenv(spec.var), "environment"
    elseif nonempty(filevars[spec.var]) then
      value, where = filevars[spec.var], env_path
    elseif spec.alt and nonempty(getenv(spec.alt)) then
      value, where = getenv(spec.alt), "environment " .. spec.alt
    elseif spec.option and alloy.defaults[spec.option] ~= nil then
      value, where = alloy.defaults[spec.option], "default"
    end
    if value ~= nil then
      local v, cerr = check(alloy, spec, value, where)
      if v == nil then
        return nil, failure.usage(cerr, ("fix %s where it is set (%s)"):format(spec.var, where))
      end
      cfg[spec.field] = v
      cfg.source[spec.field] = where
    end
  end
  -- a region moves the token call unless a host was set explicitly
  if cfg.region and M.REGIONS[cfg.region] and cfg.source.embedded_url == "default" then
    cfg.embedded_url, cfg.source.embedded_url = M.REGIONS[cfg.region], cfg.source.region
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
    connect_timeout = math.min(require("alloy").defaults.connect_timeout, cfg.timeout),
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
  for _, spec in ipairs(VARS) do
    local v = cfg[spec.field]
    if v ~= nil then
      local shown = spec.field == "api_key" and ("set (%d characters)"):format(#v)
        or type(v) == "number" and ("%g"):format(v) or v
      lines[#lines + 1] = ("%-19s %s  [%s]"):format(spec.var, shown, cfg.source[spec.field])
    end
  end
  return lines
end

return M
