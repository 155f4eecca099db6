"""Regenerate src/metisnet/chain/artifacts/*.json from the Vyper sources.

Usage: .venv/bin/python scripts/compile_contracts.py
"""

from __future__ import annotations

from metisnet.chain.artifacts import write_artifacts


def main() -> None:
    for path in write_artifacts():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
