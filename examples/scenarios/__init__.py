"""The simulator's scenarios (TOML) and their policies."""
