-- alloy_nvim: Alloy from inside Neovim (0.7+, LuaJIT), on top of alloy.so.
--
--   :AlloyToken [user]        a fresh JWT for the user into register " (and opts.register),
--                             its expiry echoed; the token itself is never echoed
--   :AlloyConnections [user]  the user's connections in a scratch buffer
--
--   require("alloy_nvim").setup {
--     user_id = "68c3...",      -- default: ALLOY_USER_ID (environment, then ./.env)
--     register = "+",           -- also put the token here (default: "+" when a clipboard
--                               -- provider exists, else only the unnamed register)
--     env_file = "~/.alloy.env",-- default: .env in Neovim's current directory
--     base_url = ..., embedded_url = ..., api_version = ..., timeout = 15,
--     root = "/path/to/lua-alloy", -- the checkout; default: found from this file's location
--   }
--
-- The API key comes from ALLOY_API_KEY in the environment or the .env file (lua/alloy/config.lua
-- precedence: setup options > environment > .env > defaults).  An `api_key` option works too,
-- but keeps the key in your config; prefer the environment or a 0600 .env.
--
-- alloy.so: the LuaJIT/5.1 build of this checkout (build/luajit/alloy.so or
-- build/lua5.1/alloy.so, `make LUA=luajit`), else whatever package.cpath finds (a LuaRocks
-- install for Lua 5.1).  The call is synchronous: Neovim waits for it (at most `timeout`).
local M = {}
local hint_view

local opts = {}
local paths_done = false

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The checkout: this file is <root>/examples/nvim/lua/alloy_nvim.lua. The source path is
-- relative when the runtimepath entry is (`set rtp+=examples/nvim`): make it absolute.
local function default_root()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) ~= "@" then return nil end
  return vim.fn.fnamemodify(src:sub(2), ":p"):match("^(.*)/examples/nvim/lua/[^/]*$")
end

-- Puts the checkout's helpers (lua/alloy/*.lua) and alloy.so on the search paths, once.
local function setup_paths()
  if paths_done then return end
  paths_done = true
  local root = opts.root or default_root()
  if not root then return end
  if exists(root .. "/lua/alloy/config.lua") then
    local entry = root .. "/lua/?.lua"
    if not package.path:find(entry, 1, true) then package.path = entry .. ";" .. package.path end
  end
  for _, abi in ipairs({ "lua5.1", "luajit" }) do -- luajit ends up first
    if exists(root .. "/build/" .. abi .. "/alloy.so") then
      local entry = root .. "/build/" .. abi .. "/?.so"
      if not package.cpath:find(entry, 1, true) then package.cpath = entry .. ";" .. package.cpath end
    end
  end
end

local function notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO)
end

local function fail(msg, hint)
  msg = "Alloy: " .. tostring(msg):gsub("[\r\n]+", " ")
  if hint and hint ~= "" then msg = msg .. "\nhint: " .. hint end
  notify(msg, vim.log.levels.ERROR)
  return nil, msg
end

local function expand(p)
  if p and p ~= "" then return vim.fn.expand(p) end
  return nil
end

-- Configuration and a client: cfg, client, alloy | nil, msg (already shown).
local function connect(user)
  setup_paths()
  local ok, alloy = pcall(require, "alloy")
  if not ok then
    return fail("cannot load alloy.so: " .. tostring(alloy):match("^[^\n]*"),
      "run `make LUA=luajit` in the lua-alloy checkout, or set root = ... in setup{}")
  end
  local config = require "alloy.config"
  local cfg, err = config.load {
    flags = {
      user = user ~= "" and user or opts.user_id, env_file = expand(opts.env_file),
      base_url = opts.base_url, embedded_url = opts.embedded_url, api_version = opts.api_version,
    },
  }
  if not cfg then return fail(err.message, err.hint) end
  if opts.api_key and opts.api_key ~= "" then cfg.api_key = opts.api_key end
  if opts.timeout then cfg.timeout = opts.timeout end
  if not cfg.api_key then
    return fail("ALLOY_API_KEY is not set", config.where_to_set(cfg, "ALLOY_API_KEY"))
  end
  if not cfg.user_id then
    return fail("no user id", "pass one (:AlloyToken <user>), set user_id in setup{}, or "
      .. config.where_to_set(cfg, "ALLOY_USER_ID"))
  end
  local cok, client = pcall(alloy.new, config.client_options(cfg))
  if not cok then return fail(client) end
  return cfg, client, alloy
end


-- How hints name the settings here: the env vars the plugin reads, and its own user option.
function hint_view(cfg)
  return {
    setting = function(field)
      if field == "user_id" then return "ALLOY_USER_ID (or :AlloyToken <user>)" end
      for _, v in ipairs(require("alloy.config").VARS) do if v.field == field then return v.var end end
      return field
    end,
    value = function(field) return cfg[field] end,
  }
end

-- The scripts' own time formats: "2026-11-28T00:17:22Z", "in 59m".
local function iso(t) return require("alloy.timefmt").iso(t) end
local function relative(secs) return require("alloy.timefmt").relative(secs) end

-- Lua API: token, info {user_id, exp, expires_at, registers} | nil, msg.
function M.token(user)
  local cfg, client, alloy = connect(user or "")
  if not cfg then return nil, client end
  local token, res_or_msg, code = client:user_token(cfg.user_id)
  client:close()
  if not token then
    local err = require("alloy.failure").api(res_or_msg, code, nil, "user_token")
    return fail(err.message, require("alloy.hints").for_failure(err, hint_view(cfg)))
  end

  local registers = { '"' }
  local extra = opts.register
  if extra == nil and vim.fn.has("clipboard") == 1 then extra = "+" end
  if extra and extra ~= "" and extra ~= '"' then registers[#registers + 1] = extra end
  for _, r in ipairs(registers) do vim.fn.setreg(r, token) end

  local claims = alloy.jwt_claims(token)
  local exp = claims and tonumber(claims.exp)
  local info = { user_id = cfg.user_id, exp = exp, expires_at = exp and iso(exp), registers = registers }
  local where = table.concat(vim.tbl_map(function(r) return '"' .. r end, registers), " ")
  local when = exp and ("expires %s (%s)"):format(iso(exp), relative(exp - os.time())) or "no exp claim"
  vim.api.nvim_echo({ { ("Alloy token for %s in %s, %s"):format(cfg.user_id, where, when) } }, true, {})
  return token, info
end

local function table_lines(list)
  local lines = {}
  for line in require("alloy.credentials").table(list):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

-- A scratch buffer named `name` in a new window (reused if it exists), filled with lines.
local function scratch(name, lines)
  local buf = -1
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(b) == name then buf = b end
  end
  if buf == -1 then
    vim.cmd("new")
    buf = vim.api.nvim_get_current_buf()
    vim.api.nvim_buf_set_name(buf, name)
  else
    local win = vim.fn.bufwinid(buf)
    if win ~= -1 then vim.api.nvim_set_current_win(win) else vim.cmd("sbuffer " .. buf) end
  end
  for k, v in pairs({ buftype = "nofile", bufhidden = "wipe", swapfile = false, filetype = "alloy" }) do
    vim.api.nvim_buf_set_option(buf, k, v)
  end
  vim.api.nvim_buf_set_option(buf, "modifiable", true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_buf_set_option(buf, "modifiable", false)
  vim.api.nvim_buf_set_option(buf, "modified", false)
  return buf
end

-- Lua API: list (normalised credentials), buf | nil, msg.
function M.connections(user)
  local cfg, client = connect(user or "")
  if not cfg then return nil, client end
  local credentials = require "alloy.credentials"
  local list, err = credentials.list(client, cfg.user_id)
  client:close()
  if not list then return fail(err.message, err.hint or require("alloy.hints").for_failure(err, hint_view(cfg))) end
  table.sort(list, function(a, b) return (a.createdAt or "") < (b.createdAt or "") end)
  local lines = { ("Alloy connections for %s: %d"):format(cfg.user_id, #list), "" }
  if #list == 0 then
    lines[#lines + 1] = "(none: connect an app with alloy-initiate-oauth, or lua/initiate_oauth.lua in the checkout)"
  else
    for _, l in ipairs(table_lines(list)) do lines[#lines + 1] = l end
  end
  local buf = scratch("alloy://connections/" .. cfg.user_id, lines)
  return list, buf
end

function M.setup(o)
  opts = vim.tbl_extend("force", opts, o or {})
  paths_done = false
  return M
end

-- User commands (plugin/alloy_nvim.lua calls this; idempotent).
function M.commands()
  local function arg_of(c) return vim.trim(c.args or "") end
  vim.api.nvim_create_user_command("AlloyToken", function(c) M.token(arg_of(c)) end,
    { nargs = "?", desc = "Alloy: a fresh JWT for the user into a register" })
  vim.api.nvim_create_user_command("AlloyConnections", function(c) M.connections(arg_of(c)) end,
    { nargs = "?", desc = "Alloy: the user's connections in a scratch buffer" })
end

return M
