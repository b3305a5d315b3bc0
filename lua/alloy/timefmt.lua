-- alloy.timefmt: times as people read them.
--
-- M.iso(t)          -> "2025-10-01T12:00:00Z" (UTC) for seconds since the epoch
-- M.relative(secs)  -> "in 59m", "in 1h 5m", "in 42s", "5m ago"
-- M.short(iso)      -> "2025-02-05T15:09:29.551Z" as "2025-02-05 15:09"; anything else as it is
local M = {}

function M.iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

function M.relative(seconds)
  local s = math.floor(math.abs(seconds) + 0.5)
  local text
  if s < 60 then
    text = s .. "s"
  elseif s < 3600 then
    text = math.floor(s / 60) .. "m"
  elseif s < 86400 then
    local h = math.floor(s / 3600)
    local m = math.floor((s - h * 3600) / 60)
    text = h .. "h" .. (m > 0 and (" " .. m .. "m") or "")
  else
    text = math.floor(s / 86400) .. "d"
  end
  if seconds < 0 then return text .. " ago" end
  return "in " .. text
end

function M.short(iso)
  local date, hm = tostring(iso or ""):match("^(%d%d%d%d%-%d%d%-%d%d)T(%d%d:%d%d)")
  return date and (date .. " " .. hm) or (iso or "-")
end

return M
