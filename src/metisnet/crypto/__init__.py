"""Pure cryptographic building blocks: rings, CSPRNG/PRG, fixed-point encoding, sharing.

numpy in, numpy out; no I/O and no global state.
"""
