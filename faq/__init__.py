"""The city's FAQ knowledge base (TOML files in this folder) and the matcher that searches it."""
