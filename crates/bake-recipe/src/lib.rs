//! TOML recipe to validated Recipe: variables, interpolation, diagnostics with file:line:column
