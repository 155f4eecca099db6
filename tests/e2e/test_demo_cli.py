"""``metis demo``: the README's main command, on the embedded chain and on the devnet."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from metisnet.cli import main


def test_embedded_demo_verifies_every_program(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["demo", "--embedded", "--rows", "300",
                                    "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert out.output.count("verified") >= 4
    for program in ("count", "sum", "mean", "variance"):
        assert program in out.output
    assert "MISMATCH" not in out.output and "data owner" in out.output


@pytest.mark.integration
def test_devnet_demo_starts_and_stops_its_own_network(tmp_path: Path) -> None:
    from metisnet.node.devnet import devnet_status, load_state

    root = tmp_path / "devnet"
    out = CliRunner().invoke(main, ["demo", "--rows", "300", "--data-dir", str(root)])
    assert out.exit_code == 0, out.output
    assert out.output.count("verified") >= 4
    assert load_state(root) is None and devnet_status(root) == []  # stopped what it started
