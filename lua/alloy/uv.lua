-- alloy.uv: drives a client's started requests (client:start) from a libuv loop: Neovim's
-- vim.loop, or luv's `require "luv"` elsewhere. One poll handle per socket libcurl names, one
-- timer for its timeout and the retry waits; everything runs on the loop's thread, so a
-- request's callback runs from the loop too (in Neovim a "fast" callback: wrap it in
-- vim.schedule_wrap to call the editor's API).
--
-- The handles exist only while requests are in flight: an idle client holds none, so the loop
-- can end (uv.run returns) and a client nobody refers to can be collected.
local M = {}

-- attach(client, uv) -> client. uv: the luv module (vim.loop in Neovim); default: vim.loop
-- when it exists, else require "luv".
function M.attach(client, uv)
  uv = uv or (rawget(_G, "vim") and _G.vim.loop) or require "luv"
  local polls, timer = {}, nil
  -- An event for a client that closed meanwhile (a finaliser, a callback closing it while the
  -- loop had the event queued) has nothing left to drive: it is dropped; any other error is
  -- the host's.
  local function drive(method, ...)
    local ok, err = pcall(method, client, ...)
    if not ok and not tostring(err):find("client is closed", 1, true) then error(err, 0) end
  end
  client:loop {
    socket = function(fd, events)
      local poll = polls[fd]
      if events == "remove" then
        if poll then
          polls[fd] = nil
          poll:close()
        end
        return
      end
      local function on_events(err, seen) drive(client.socket_action, fd, err and "e" or seen) end
      if not poll then
        poll = uv.new_socket_poll(fd)
        -- A socket the loop cannot watch (closed meanwhile: its removal comes next) is
        -- reported as an error on it, for libcurl to end what used it.
        if not poll then return on_events("cannot watch") end
        polls[fd] = poll
      end
      if not poll:start(events, on_events) then
        polls[fd] = nil
        poll:close()
        on_events("cannot watch")
      end
    end,
    timer = function(ms)
      if ms < 0 then
        if timer then
          timer:close()
          timer = nil
        end
        return
      end
      timer = timer or assert(uv.new_timer())
      timer:start(ms, 0, function() drive(client.on_timeout) end)
    end,
  }
  return client
end

return M
