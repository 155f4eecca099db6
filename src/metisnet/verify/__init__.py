"""Verification of outsourced results: homomorphic MACs, Freivalds checks, commitments."""
