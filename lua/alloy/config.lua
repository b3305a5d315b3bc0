-- alloy.config: the commands' configuration.
--
-- Precedence: command-line flags > environment > .env file (./.env, or --env-file) >
-- defaults. An empty value counts as unset. ALLOY_API_KEY has no flag on purpose: a command
-- line is visible to every user of the machine (ps, /proc/*/cmdline).
--
-- M.VARS lists every variable once (its field, its flag, what it is): the help texts and
-- the docs are made from it. Defaults and rules of the alloy.new options are alloy.so's
-- (alloy.defaults, alloy.check_option), stated once in C; the commands' own defaults are
-- M.DEFAULTS.
--
-- M.load{ flags = args, getenv = os.getenv }
--   -> cfg | nil, err (an alloy.failure; configuration errors: status 2). flags is a
--   command's parsed arguments: each variable's `flag` key is read from it.
-- cfg.<field>, cfg.source.<field> ("flag --user", "environment", ".env (path)", "default"),
-- cfg.env_file (the file read, if any), cfg.env_path (the one --save writes), cfg.warnings
-- (a .env holding the key that others can read, or that git would commit).
-- M.require(cfg, need) -> cfg | nil, err: the key (and the user id when need.user) is set
-- M.client(cfg, extra) -> a client (alloy.new with cfg's options and extra) | nil, err
-- M.describe(cfg)      -> lines for --verbose; the key only as "set"
-- M.where_to_set(cfg, var, flag) -> "pass --user <id>, or export ALLOY_USER_ID=... ..."
-- M.alloy()            -> the alloy module | nil, err (not built: the hint says how to build it)

local failure = require "alloy.failure"

local M = {}

-- Each variable once. flag: the key of a command's parsed arguments that overrides it (its
-- option's name with "-" as "_"); option: the alloy.new option it sets (its default and rule
-- are alloy.so's); help: what it is, for --help and the docs.
M.VARS = {
  { field = "api_key", var = "ALLOY_API_KEY", option = "api_key", help = "required; never a flag" },
  { field = "user_id", var = "ALLOY_USER_ID", flag = "user", help = "the user: 24-hex id or username" },
  { field = "base_url", var = "ALLOY_BASE_URL", flag = "base_url", option = "base_url", help = "the API host" },
  { field = "embedded_url", var = "ALLOY_EMBEDDED_URL", flag = "embedded_url", option = "embedded_url",
    help = "the host of the token call" },
  { field = "api_version", var = "ALLOY_API_VERSION", flag = "api_version", option = "api_version",
    help = "x-api-version" },
  { field = "region", var = "ALLOY_REGION", flag = "region", option = "region", help = "us or eu, any case" },
  { field = "connection_id", var = "CONNECTION_ID", flag = "credential", help = "the connection alloy run uses" },
  { field = "redirect_uri", var = "REDIRECT_URI", flag = "redirect_uri", help = "where OAuth sends the browser back" },
  { field = "timeout", var = "ALLOY_TIMEOUT", option = "timeout", number = true, help = "seconds per request" },
  { field = "retries", var = "ALLOY_RETRIES", option = "retries", number = true, help = "automatic retries" },
  { field = "backoff", var = "ALLOY_BACKOFF", option = "backoff", number = true,
    help = "seconds, base of the backoff" },
  { field = "ca_file", var = "ALLOY_CA_FILE", alt = "CURL_CA_BUNDLE", option = "ca_file", file = true,
    help = "a CA bundle; else CURL_CA_BUNDLE, else the system's" },
}
local VARS = M.VARS

-- The commands' own defaults, each said once.
M.DEFAULTS = {
  -- a loopback redirect the OAuth commands can catch themselves
  redirect_uri = "http://localhost:3000/oauth/callback",
  -- executes act on a third party's service: a few at a time
  execute_concurrency = 4,
  -- metadata reads of many connectors at once
  metadata_concurrency = 8,
}


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
  -- a host not set is the region's (alloy.regions): every call follows the region
  for _, field in ipairs({ "base_url", "embedded_url" }) do
    if cfg.source[field] == "default" and cfg.source.region ~= "default" then
      cfg[field] = alloy.regions[cfg.region][field]
      cfg.source[field] = "region " .. cfg.region .. " (" .. cfg.source.region .. ")"
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

-- cfg when it has the API key, and the user id when need.user.  -> cfg | nil, err
function M.require(cfg, need)
  if not cfg.api_key then
    return nil, failure.usage("ALLOY_API_KEY is not set",
      M.where_to_set(cfg, "ALLOY_API_KEY") .. " (it is never taken as a command-line argument)")
  end
  if need and need.user and not cfg.user_id then
    return nil, failure.usage("no user id: ALLOY_USER_ID is not set and --user was not given",
      M.where_to_set(cfg, "ALLOY_USER_ID", "--user <id>"))
  end
  return cfg
end

-- A client from the configuration.  -> client | nil, err (alloy.new refusing the options: status 2)
function M.client(cfg, extra)
  local alloy, aerr = M.alloy()
  if not alloy then return nil, aerr end
  local ok, client = pcall(alloy.new, M.client_options(cfg, extra))
  if not ok then
    return nil, failure.usage("cannot create the Alloy client: " .. tostring(client):gsub("^[^:]*:%d+: ", ""),
      "check the ALLOY_* settings (--verbose shows them)")
  end
  return client
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
    region = cfg.region,
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
