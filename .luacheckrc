std = "max"
max_line_length = 120
exclude_files = { "build/**" }
files["spec/**/*_spec.lua"] = { std = "+busted" }
files["spec/sandbox/**"] = { globals = { "ngx" } }
files["examples/openresty/**"] = { globals = { "ngx" } }
files["examples/nvim/**"] = { globals = { "vim" } }
