"""Chain layer: Vyper contracts, compiled artifacts, typed clients and chain backends."""
