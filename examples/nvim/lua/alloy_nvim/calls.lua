-- alloy_nvim.calls: requests that never block the editor.
--
-- A call runs the library's own code (alloy.credentials, alloy.actions ...) in a coroutine,
-- against a stand-in client: each named operation it calls is started on vim.loop
-- (client:start, wired by alloy.uv) and waited for by yielding. The answer arrives in a loop
-- callback, where Neovim refuses most of its API, so the coroutine is resumed from
-- vim.schedule, on the main loop. A call can be cancelled (M.cancel, M.cancel_all, or wiping
-- the buffer it writes into): the request in flight gets its callback once, with CANCELLED,
-- and nothing more is sent.
--
--   M.client(alloy, options) -> the client for these alloy.new options (one per distinct set)
--   M.start{ client =, run = function(client) ... end, done = function(call, ...) end, buf = }
--     -> call; done(call, <what run returned>) runs once, on the main loop; call.cancelled
--     says whether it was cancelled (call.superseded: by a new call into the same buffer)
--   M.cancel(call) -> whether it was in progress; M.cancel_all() -> how many were
--   M.count() -> calls in progress; M.close_all() cancels them all and closes the clients
local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 (LuaJIT)

local running, count, last_id = {}, 0, 0
local shared = {}
local clients = setmetatable({}, { __mode = "k" }) -- every client made, while it lives

local function pack(...) return { n = select("#", ...), ... } end

-- Calls with the same options share a client (and its connections); new options get a new
-- one, and the old one lives on while its requests are in flight.
function M.client(alloy, options)
  local parts = {}
  for k, v in pairs(options) do parts[#parts + 1] = k .. "=" .. tostring(v) end
  table.sort(parts)
  local key = table.concat(parts, "\0")
  if key ~= shared.key then
    shared.client = require("alloy.uv").attach(alloy.new(options), vim.loop)
    shared.key = key
    clients[shared.client] = true
  end
  return shared.client
end

local step

local function finish(call, ...)
  if not running[call.id] then return end
  running[call.id] = nil
  count = count - 1
  if call.autocmd then pcall(vim.api.nvim_del_autocmd, call.autocmd) end
  call.done(call, ...)
end

-- Starts `op` on the loop and yields until its answer is back: what the blocking call returns.
local function await(call, op, ...)
  if call.cancelled then
    return nil, ("CANCELLED: the call was cancelled before %s was sent"):format(op), "CANCELLED"
  end
  local args = pack(...)
  args.n = args.n + 1
  args[args.n] = function(...) -- in a loop callback: only vim.schedule here
    local answer = pack(...)
    vim.schedule(function()
      call.handle = nil
      step(call, unpack_(answer, 1, answer.n))
    end)
  end
  call.handle = call.client:start(op, unpack_(args, 1, args.n))
  return coroutine.yield()
end

function step(call, ...)
  local r = pack(coroutine.resume(call.co, ...))
  if not r[1] then
    return finish(call, nil, require("alloy.failure").new("internal error: " .. tostring(r[2])))
  end
  if coroutine.status(call.co) == "dead" then finish(call, unpack_(r, 2, r.n)) end
end

-- The client the library's code sees: client:user_token(id) and the other named operations.
local function stand_in(call)
  return setmetatable({}, { __index = function(_, op)
    return function(_, ...) return await(call, op, ...) end
  end })
end

function M.cancel(call)
  if call.cancelled or not running[call.id] then return false end
  call.cancelled = true
  if call.handle then call.handle:cancel() end -- its callback (CANCELLED) resumes the call
  return true
end

function M.cancel_all()
  local n = 0
  for _, call in pairs(running) do
    if M.cancel(call) then n = n + 1 end
  end
  return n
end

function M.count() return count end

-- Cancels every call and closes every client (when Neovim exits): their connections, timers
-- and curl handles are let go now, not whenever the process ends.
function M.close_all()
  M.cancel_all()
  for client in pairs(clients) do pcall(client.close, client) end
  shared = {}
end

function M.start(spec)
  if spec.buf then -- a new call into a buffer replaces the one writing there
    for _, other in pairs(running) do
      if other.buf == spec.buf and M.cancel(other) then other.superseded = true end
    end
  end
  last_id = last_id + 1
  local call = { id = last_id, client = spec.client, buf = spec.buf, done = spec.done, cancelled = false }
  call.co = coroutine.create(spec.run)
  running[call.id] = call
  count = count + 1
  if spec.buf then -- closing the buffer (it is wiped when hidden) cancels the call
    call.autocmd = vim.api.nvim_create_autocmd({ "BufWipeout", "BufDelete", "BufUnload" }, {
      buffer = spec.buf, once = true, callback = function() M.cancel(call) end,
    })
  end
  step(call, stand_in(call))
  return call
end

return M
