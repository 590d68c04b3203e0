"""Built-in technique plugins, one module each; registered as entry points in pyproject.toml."""
