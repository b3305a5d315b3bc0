-- alloy_nvim.settings: the plugin's options, its configuration (alloy.config), its client,
-- and the words its messages and hints use.
--
-- Options: setup{ name = value } wins over g:alloy_<name>; the configuration then reads them
-- before the environment and the env file, as a command line's flags (alloy.config). Hints
-- (alloy.hints) name these options, never a command-line flag or an ALLOY_* variable the
-- plugin has an option for.
local M = {}

-- Options that are not Alloy settings; each of alloy.config.VARS is one too, named after its
-- field (user_id is `user`, as the commands' --user).
M.OWN = { "env_file", "register", "root" }

local opts = {}

function M.set(o)
  opts = vim.tbl_extend("force", opts, o or {})
end

local function option_name(field) return field == "user_id" and "user" or field end

-- An option's value: setup{} (user_id is an older name of user), else g:alloy_<name>.
function M.get(name)
  local v = opts[name]
  if v == nil and name == "user" then v = opts.user_id end
  if v == nil then v = vim.g["alloy_" .. name] end
  return v
end

local function nonempty(v) return v ~= nil and v ~= "" and v or nil end

function M.line(s) return require("alloy.output").line(s) end

-- Says msg as a Neovim message: an error (red; inside a command, the command fails), a
-- warning, or plain.
function M.say(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO, { title = "Alloy" })
end

local hints_mod = function() return require "alloy.hints" end

-- The advice for a failure, in the plugin's words (view), or nil.
function M.hint(err, view)
  local hints, h = hints_mod(), nil
  if err.code then
    -- the generic advice is about --verbose, which the plugin does not have
    if hints.BY_CODE[err.code] or hints.BY_CODE[hints.family(err.code) or ""] then h = hints.for_failure(err, view) end
  else
    h = rawget(err, "hint")
  end
  if h and h:find("%-%-%a") then h = nil end -- advice naming a command-line option is not for here
  return h
end

-- Shows "Alloy: <text>" and "hint: <hint>" as an error.  -> nil, that text
function M.fail(text, hint)
  local msg = "Alloy: " .. M.line(text)
  if hint and hint ~= "" then msg = msg .. "\nhint: " .. M.line(hint) end
  M.say(msg, vim.log.levels.ERROR)
  return nil, msg
end

-- The checkout: this file is <root>/examples/nvim/lua/alloy_nvim/settings.lua. The path is
-- relative when the runtimepath entry is (`set rtp+=examples/nvim`): made absolute.
local function default_root()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) ~= "@" then return nil end
  return vim.fn.fnamemodify(src:sub(2), ":p"):match("^(.*)/examples/nvim/lua/alloy_nvim/[^/]*$")
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The checkout's modules (lua/alloy/*.lua) and alloy.so on the search paths.
local function add_paths()
  local root = nonempty(M.get("root")) and vim.fn.expand(M.get("root")) or default_root()
  if not root then return end
  local function add(which, entry)
    if not package[which]:find(entry, 1, true) then package[which] = entry .. ";" .. package[which] end
  end
  if exists(root .. "/lua/alloy/config.lua") then add("path", root .. "/lua/?.lua") end
  for _, abi in ipairs({ "lua5.1", "luajit" }) do -- luajit ends up first
    if exists(root .. "/build/" .. abi .. "/alloy.so") then add("cpath", root .. "/build/" .. abi .. "/?.so") end
  end
end

local BUILD_HINT = "run `make LUA=luajit` in the lua-alloy checkout, or point setup{ root = … } at the checkout"

-- The words alloy.hints uses here. about: { user_arg = true (the user came from
-- :AlloyToken <user>), connector =, action = }
local function view(cfg, about)
  return {
    setting = function(field)
      if field == "api_key" then return "ALLOY_API_KEY (in the environment or the env_file)" end
      if field == "user_id" and about.user_arg then return ":AlloyToken <user>" end
      return ("setup{ %s = … }"):format(option_name(field))
    end,
    value = function(field)
      local v = cfg[field]
      if v == nil or field == "api_key" then return nil end
      v = type(v) == "number" and ("%g"):format(v) or tostring(v)
      local src = cfg.source[field]
      if src == "environment" then return v .. ", from the environment" end
      if src and src == cfg.env_file then return v .. ", from " .. src end
      return v
    end,
    connector = about.connector, action = about.action,
    command = function(name, ...)
      local args = { ... }
      if name == "connections" and #args <= 1 and not tostring(args[1] or ""):find("^%-") then
        return ":AlloyConnections" .. (args[1] and (" " .. args[1]) or "")
      end
      if name == "token" and #args == 0 then return ":AlloyToken" end
      return nil
    end,
  }
end

-- The configuration and the client for one command. need: { user = true, connection = true },
-- user: the user a command was given (:AlloyToken <user>). Failures are shown here.
-- -> { cfg =, client =, alloy =, view = function(about) } | nil, message
-- The library (lua/alloy/*.lua and alloy.so) on the search paths and loadable.
-- -> alloy.config, alloy | nil, message (shown)
function M.library()
  add_paths()
  local lok, config = pcall(require, "alloy.config")
  if not lok then return M.fail("cannot load alloy.config: " .. tostring(config):match("^[^\n]*"), BUILD_HINT) end
  local alloy, aerr = config.alloy()
  if not alloy then return M.fail(aerr.message, BUILD_HINT) end
  return config, alloy
end

function M.session(need, user)
  local config, alloy = M.library()
  if not config then return nil, alloy end

  -- the options, checked by alloy.so's rules, become what alloy.config reads first
  local given, from_arg = {}, nonempty(user)
  for _, spec in ipairs(config.VARS) do
    local name = option_name(spec.field)
    local v = nonempty(M.get(name))
    if spec.field == "user_id" and from_arg then v = from_arg end
    if v ~= nil then
      local ok, msg = v, nil
      if spec.number then v = tonumber(v) or v end -- let g:alloy_timeout = "10" works too
      if spec.option then ok, msg = alloy.check_option(spec.option, v) end
      if spec.region and not config.REGIONS[tostring(v):lower()] then ok, msg = nil, "region must be us or eu" end
      if ok == nil then
        return M.fail(("setup option %s: %s"):format(name, msg),
          ("fix %s in setup{} (or g:alloy_%s)"):format(name, name))
      end
      given[spec.var] = { value = v, field = spec.field }
    end
  end
  local env_file = nonempty(M.get("env_file"))
  local cfg, err = config.load {
    flags = { env_file = env_file and vim.fn.expand(env_file) },
    getenv = function(var) return given[var] and given[var].value or os.getenv(var) end,
  }
  if not cfg then
    if err.message:find("^cannot read the env file") then
      return M.fail(err.message, "env_file (setup{ env_file = … } or g:alloy_env_file) must name a readable"
        .. " file; `make sandbox` writes .env.sandbox while it runs")
    end
    return M.fail(err.message, M.hint(err))
  end
  for _, g in pairs(given) do cfg.source[g.field] = "setup" end
  if from_arg then cfg.source.user_id = "argument" end
  for _, w in ipairs(cfg.warnings) do vim.notify_once("Alloy: " .. M.line(w), vim.log.levels.WARN) end

  if not cfg.api_key then
    return M.fail("ALLOY_API_KEY is not set", config.where_to_set(cfg, "ALLOY_API_KEY")
      .. ", or point setup{ env_file = … } at a file that has it")
  end
  if need.user and not cfg.user_id then
    return M.fail("no user id", "set setup{ user = … } (or pass one: :AlloyToken <user>), or "
      .. config.where_to_set(cfg, "ALLOY_USER_ID"))
  end
  if need.connection and not cfg.connection_id then
    return M.fail("no connection id", "set setup{ connection_id = … }, or "
      .. config.where_to_set(cfg, "CONNECTION_ID") .. " (:AlloyConnections lists the user's)")
  end
  local ok, client = pcall(require("alloy_nvim.calls").client, alloy, config.client_options(cfg))
  if not ok then return M.fail("cannot create the Alloy client: " .. tostring(client)) end
  return { cfg = cfg, client = client, alloy = alloy, view = function(about) return view(cfg, about or {}) end }
end

return M
