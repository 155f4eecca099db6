"""Secure multi-party computation: shared values and protocol operations over a context.

No I/O of its own: every operation takes an explicit context whose channel moves bytes.
"""
