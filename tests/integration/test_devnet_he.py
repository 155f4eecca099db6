"""An he task over real processes: anvil, 3 data nodes, 5 compute nodes, TLS, a 2048-bit key.

One compute node is drawn; the data nodes encrypt under the requester's key and send their
MAC-tagged ciphertexts to it; the requester hands out the MAC keys and verifies over its
own TLS endpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metisnet.chain.tasks import TaskState
from metisnet.errors import ChainError
from metisnet.he.paillier import generate_keypair
from metisnet.node.devnet import DevnetRequester, devnet_down, devnet_up
from metisnet.node.localnet import synthetic_column
from metisnet.node.outsource_task import OutsourceVerifier, he_error_bound, he_params
from metisnet.types import TaskId

pytestmark = pytest.mark.integration

FEE = 10**16


def test_an_he_mean_over_the_devnet(tmp_path: Path) -> None:
    from metisnet.chain.anvil import find_anvil

    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")
    root = tmp_path / "devnet"
    state, _ = devnet_up(root, rows=300)
    try:
        union = np.concatenate([synthetic_column(d["seed"], d["rows"])
                                for d in state.datasets.values()])
        kp = generate_keypair(2048)
        with DevnetRequester(state, account_index=4) as dr:
            spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE, mode="he",
                           committee_size=1, params=he_params(kp.public_key))
            res = dr.requester(timeout=90, he=OutsourceVerifier(kp)).run(spec)
            assert res.verdict == "verified", res.verdict
            assert res.values is not None
            assert abs(res.values[0] - union.mean()) <= he_error_bound("mean", union)
            info = dr.contracts.tasks.get_task(TaskId(res.task_id))
            assert info.state == TaskState.SETTLED and len(info.committee) == 1
            assert dr.contracts.tasks.credits(info.committee[0]) > 0
    finally:
        devnet_down(root)
