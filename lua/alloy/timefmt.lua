-- alloy.timefmt: times as people read them.
--
-- M.iso(t)          -> "2025-10-01T12:00:00Z" (UTC) for seconds since the epoch
-- M.relative(secs)  -> "in 59m", "in 1h 5m", "in 42s", "5m ago"
-- M.short(iso)      -> "2025-02-05T15:09:29.551Z" as "2025-02-05 15:09"; anything else as it is
-- M.parse(text, now) -> seconds since the epoch | nil, why: a time a person typed, as ISO 8601
--                      ("2025-10-01", "2025-10-01T12:00", "…:30Z", "…:30.5+02:00"; UTC unless it
--                      names an offset) or as a time ago ("90s", "15m", "2h", "7d", "1w" before now)
-- M.iso_ms(t)       -> "2025-10-01T12:00:00.000Z": the form Alloy's own times have (they compare
--                      as text in the order of time)
local M = {}

local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil).
local function days(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

function M.parse(text, now)
  text = tostring(text or "")
  local n, unit = text:match("^(%d+)%s*([smhdw])$")
  if n then return (now or os.time()) - tonumber(n) * UNITS[unit] end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil, "not a time (ISO 8601 such as 2025-10-01T12:00:00Z, or an age such as 15m, 2h, 7d)" end
  local h, mi, sec, frac, zone = 0, 0, 0, "", ""
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not hh then return nil, "not a time of day after the date (T12:00)" end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, after = tail:match("^:(%d%d)(.*)$")
    if ss then sec, tail = tonumber(ss), after end
    frac, zone = tail:match("^(%.?%d*)(.*)$")
    if frac == "." then return nil, "a fraction of a second needs digits" end
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60 then
    return nil, "a field is out of range"
  end
  local offset = 0
  if zone ~= "" and zone ~= "Z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil, "not a time zone (Z, +02:00)" end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  end
  return days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + (tonumber("0" .. frac) or 0) - offset
end

function M.iso_ms(t)
  local whole = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. (".%03dZ"):format(math.floor((t - whole) * 1000 + 0.5) % 1000)
end

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
