"""Pure mappings between tenant objects and meta-cluster objects (no I/O)."""
