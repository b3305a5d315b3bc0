-- :AlloyToken, :AlloyConnections, :AlloyRun and :AlloyCancel (see lua/alloy_nvim.lua). Loaded
-- from the runtimepath:
--   set rtp+=/path/to/lua-alloy/examples/nvim   (with -u NONE, then: runtime plugin/alloy_nvim.lua)
if vim.g.loaded_alloy then return end
vim.g.loaded_alloy = true
require("alloy_nvim").commands()
