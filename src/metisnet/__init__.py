"""metisnet: a privacy computing network.

Several organisations compute together on data none of them may show the others: data
nodes secret-share (or homomorphically encrypt) their inputs to compute nodes drawn by
stake-weighted consensus on an EVM chain; compute nodes run secure multi-party
computation and return results that are verified before they are accepted.

See ``ARCHITECTURE.md`` for the layers.
"""

from __future__ import annotations

from metisnet.errors import MetisError

__all__ = ["MetisError", "__version__"]

__version__ = "0.1.0"
