-- alloy.tables: rows of cells as text. rows[1] is the header.
--
-- M.columns(rows)       aligned columns two spaces apart, one line per row (a terminal's view)
-- M.tsv(rows)           tab-separated rows without the header (a program's view, as gh prints)
-- M.render(rows, tty)   M.columns when tty, else M.tsv
-- M.text(v)             a server's value as a cell: a string as it is, a whole number without
--                       ".0", true/false as yes/no, anything else (missing, null, a table) "-"
-- Every cell is one line of text: controls (tabs and newlines would break the rows, escape
-- sequences would drive the terminal) and the marks of alloy.output become blanks.
local output = require "alloy.output"

local M = {}

local function cells(row)
  local out = {}
  for i, cell in ipairs(row) do out[i] = output.cell(cell) end
  return out
end

function M.columns(rows)
  local clean, width = {}, {}
  for r, row in ipairs(rows) do
    clean[r] = cells(row)
    for i, cell in ipairs(clean[r]) do
      if #cell > (width[i] or 0) then width[i] = #cell end
    end
  end
  local out = {}
  for _, row in ipairs(clean) do
    for i = 1, #row - 1 do row[i] = row[i] .. string.rep(" ", width[i] - #row[i]) end
    out[#out + 1] = table.concat(row, "  ")
  end
  return table.concat(out, "\n") .. "\n"
end

function M.tsv(rows)
  local out = {}
  for r = 2, #rows do out[#out + 1] = table.concat(cells(rows[r]), "\t") .. "\n" end
  return table.concat(out)
end

function M.text(v)
  if type(v) == "string" then return v end
  if type(v) == "boolean" then return v and "yes" or "no" end
  if type(v) == "number" then
    return (v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53) and ("%d"):format(v) or tostring(v)
  end
  return "-"
end

function M.render(rows, tty)
  if tty then return M.columns(rows) end
  return M.tsv(rows)
end

return M
