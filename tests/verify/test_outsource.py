"""Outsourcing end to end over messages: honest nodes pass, every kind of cheat is caught.

The randomised test draws at least 1,000 cheats (changed results, dropped or duplicated
inputs, wrong weights, replayed old results, mixed-up and foreign ciphertexts, wrong input
roots, missing owners, ciphertexts under other keys) over all programs with one to three
owners, on 512-bit keys (fast; tests only); a smaller run repeats it on 2048-bit keys.
Soundness error per check: at most 2^-63 (Freivalds batching) and 2^-255 (512-bit) or
2^-1023 (2048-bit) for the MAC, both below the required 2^-40.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import pytest
from gmpy2 import mpz

from metisnet.crypto.prg import Csprng, random_bytes
from metisnet.errors import CheatingDetected, ValidationError
from metisnet.he.paillier import PaillierKeypair, PaillierPrivateKey, PaillierPublicKey
from metisnet.verify import outsource
from metisnet.verify.mac import TaskKeys
from metisnet.verify.outsource import (
    VerifiedResult,
    check_evidence,
    evaluate,
    prepare,
    verify_result,
)
from metisnet.verify.programs import LinearProgram

DATA = np.array([1.5, -2.25, 3.0, 0.0, 4.125, -0.5])


def _run(kp: PaillierKeypair, prog: LinearProgram, blocks: list[Any],
         **kw: Any) -> VerifiedResult:
    keys = TaskKeys()
    task = random_bytes(16)
    batches, comms = [], []
    for j, block in enumerate(blocks):
        mac = keys.owner_key(task, j, kp.public_key.n)
        b, c = prepare(kp.public_key, mac, task, j, block, **kw)
        batches.append(msgpack.unpackb(msgpack.packb(b, use_bin_type=True), raw=False))
        comms.append(c)
    result = msgpack.unpackb(msgpack.packb(evaluate(prog.to_dict(), batches),
                                           use_bin_type=True), raw=False)
    return verify_result(kp.private_key, keys, task, prog, comms, result)


def test_sum_mean_and_variance(vkp: PaillierKeypair) -> None:
    r = _run(vkp, LinearProgram.sum(), [DATA])
    assert r.values() == [DATA.sum()]
    assert r.mean() == [DATA.mean()]
    r = _run(vkp, LinearProgram.colsum(), [DATA], squares=True)
    assert r.mean()[0] == pytest.approx(DATA.mean())
    assert r.variance() == pytest.approx(np.var(DATA), rel=1e-12)
    assert r.variance(ddof=1) == pytest.approx(np.var(DATA, ddof=1), rel=1e-12)
    assert _run(vkp, LinearProgram.sum(), [np.array([2**60, -3])]).total == (2**60 - 3,)


def test_weighted_sum_matvec_and_scoring(vkp: PaillierKeypair) -> None:
    w = [0.5, -1.0, 2.0, 0.25, 1.0, -3.0]
    r = _run(vkp, LinearProgram.from_reals("weighted_sum", weights=w), [DATA])
    assert r.values() == [pytest.approx(float(np.dot(w, DATA)))]
    m = [[1.0, 0, 0, 0, 0, 2.0], [0.5] * 6]
    r = _run(vkp, LinearProgram.from_reals("matvec", matrix=m), [DATA])
    assert r.values() == pytest.approx(list(np.array(m) @ DATA))
    x = DATA.reshape(3, 2)
    r = _run(vkp, LinearProgram.from_reals("score", weights=[2.0, -0.5], offset=1.5), [x])
    assert r.values() == pytest.approx(list(x @ np.array([2.0, -0.5]) + 1.5))


def test_multi_owner_aggregation(vkp: PaillierKeypair) -> None:
    owners = [DATA, DATA[:3] * 2, np.array([10.0, -10.0])]
    r = _run(vkp, LinearProgram.colsum(), owners, squares=True)
    allv = np.concatenate(owners)
    assert r.rows == 11 and r.counts == {0: 6, 1: 3, 2: 2}
    assert r.mean()[0] == pytest.approx(allv.mean())
    assert r.variance() == pytest.approx(np.var(allv), rel=1e-12)
    assert len(r.per_owner) == 3


def test_integer_data_stays_exact(vkp: PaillierKeypair) -> None:
    r = _run(vkp, LinearProgram("weighted_sum", weights=(3, -2, 1)), [np.array([7, 8, 9])])
    assert r.total == (21 - 16 + 9,) and r.scales == (0,)


# -- the cheating compute node -------------------------------------------------------------
@dataclass
class Scenario:
    prog: LinearProgram
    task: bytes
    keys: TaskKeys
    batches: list[dict[str, Any]]
    comms: list[dict[str, Any]]
    old_result: dict[str, Any]  # an honest result of an earlier task on the same data
    other_batch: dict[str, Any]  # same key, other task: a source of foreign ciphertexts
    pk: PaillierPublicKey
    values: list[list[int]]  # the owners' encoded inputs (to tell a real cheat)


def _weight(prog: LinearProgram, k: int, i: int, cols: int) -> int:
    kind = prog.kind
    if kind == "sum":
        return 1
    if kind == "colsum":
        return int(i % cols == k)
    if kind == "weighted_sum":
        return prog.weights[i]
    if kind == "matvec":
        return prog.matrix[k][i]
    return prog.weights[i % cols] if i // cols == k else 0


def _scenario(kp: PaillierKeypair, prog: LinearProgram, blocks: list[Any],
              rng: Csprng, **kw: Any) -> Scenario:
    pk = kp.public_key
    keys = TaskKeys(rng=rng)

    def make(task: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        bs, cs = [], []
        for j, block in enumerate(blocks):
            b, c = prepare(pk, keys.owner_key(task, j, pk.n), task, j, block, rng=rng, **kw)
            bs.append(b)
            cs.append(c)
        return bs, cs

    old_task, task = rng.bytes(16), rng.bytes(16)
    old_batches, _ = make(old_task)
    batches, comms = make(task)
    values = [outsource.encode_block(b, kw.get("frac_bits"), kw.get("squares", False))[0]
              for b in blocks]
    return Scenario(prog, task, keys, batches, comms, evaluate(prog, old_batches),
                    old_batches[0], pk, values)


def _ct(pk: PaillierPublicKey, b: bytes) -> mpz:
    return mpz.from_bytes(b, "big")


def _b(pk: PaillierPublicKey, c: int) -> bytes:
    return bytes(mpz(c).to_bytes(pk.nsquare_bytes, "big"))


def _randint(rng: Csprng, bits: int = 64) -> int:
    return 1 + int.from_bytes(rng.bytes(bits // 8), "big")


Cheat = Callable[[Scenario, Csprng], dict[str, Any]]


def _pick_owner(s: Scenario, rng: Csprng) -> int:
    return int(rng.below(len(s.batches), 1)[0])


def _pick_input(s: Scenario, j: int, rng: Csprng) -> tuple[int, int]:
    """An input index with a non-zero weight in some output, and that output."""
    b = s.batches[j]
    rows, cols = b["rows"], b["cols"]
    m = s.prog.output_count(rows, cols)
    while True:
        i = int(rng.below(rows * cols, 1)[0])
        ks = [k for k in range(m) if _weight(s.prog, k, i, cols)]
        if ks:
            return i, ks[int(rng.below(len(ks), 1)[0])]


def _with_inputs(s: Scenario, j: int, edit: Callable[[list[bytes], list[bytes]], None]
                 ) -> dict[str, Any]:
    """Evaluate honestly on owner j's inputs after ``edit``, echoing the committed root."""
    bs = copy.deepcopy(s.batches)
    vals, tags = bs[j]["values"], bs[j]["tags"]
    edit(vals, tags)
    res = evaluate(s.prog, [bs[x] if x != j else {**bs[j], "values": vals, "tags": tags}
                            for x in range(len(bs))])
    for o in res["outputs"]:
        o["root"] = s.comms[o["owner"]]["root"]
        o["count"] = s.comms[o["owner"]]["rows"] * s.comms[o["owner"]]["cols"]
    return res


def cheat_change_value(s: Scenario, rng: Csprng) -> dict[str, Any]:
    res = evaluate(s.prog, s.batches)
    o = res["outputs"][_pick_owner(s, rng)]
    k = int(rng.below(len(o["values"]), 1)[0])
    o["values"][k] = _b(s.pk, s.pk.raw_add_plain(_ct(s.pk, o["values"][k]), _randint(rng)))
    return res


def cheat_change_value_and_tag(s: Scenario, rng: Csprng) -> dict[str, Any]:
    # shift the value by d and the tag by d*g for a guessed MAC key g
    res = evaluate(s.prog, s.batches)
    o = res["outputs"][_pick_owner(s, rng)]
    k = int(rng.below(len(o["values"]), 1)[0])
    d, g = _randint(rng, 32), _randint(rng, 128)
    o["values"][k] = _b(s.pk, s.pk.raw_add_plain(_ct(s.pk, o["values"][k]), d))
    o["tags"][k] = _b(s.pk, s.pk.raw_add_plain(_ct(s.pk, o["tags"][k]), d * g))
    return res


def cheat_scale_output(s: Scenario, rng: Csprng) -> dict[str, Any]:
    # multiply value and tag by the same factor: consistent linearly, wrong under b
    res = evaluate(s.prog, s.batches)
    o = res["outputs"][_pick_owner(s, rng)]
    k = int(rng.below(len(o["values"]), 1)[0])
    f = 2 + int(rng.below(1000, 1)[0])
    o["values"][k] = _b(s.pk, s.pk.raw_mul(_ct(s.pk, o["values"][k]), f))
    o["tags"][k] = _b(s.pk, s.pk.raw_mul(_ct(s.pk, o["tags"][k]), f))
    return res


def cheat_fresh_encryptions(s: Scenario, rng: Csprng) -> dict[str, Any]:
    res = evaluate(s.prog, s.batches)
    o = res["outputs"][_pick_owner(s, rng)]
    k = int(rng.below(len(o["values"]), 1)[0])
    o["values"][k] = _b(s.pk, s.pk.raw_encrypt(_randint(rng, 32), rng=rng))
    o["tags"][k] = _b(s.pk, s.pk.raw_encrypt(_randint(rng, 512), rng=rng))
    return res


def cheat_drop_input(s: Scenario, rng: Csprng) -> dict[str, Any]:
    j = _pick_owner(s, rng)
    i, _ = _pick_input(s, j, rng)
    res = evaluate(s.prog, s.batches)
    o, cols = res["outputs"][j], s.batches[j]["cols"]
    vi, ti = _ct(s.pk, s.batches[j]["values"][i]), _ct(s.pk, s.batches[j]["tags"][i])
    for k in range(len(o["values"])):
        w = _weight(s.prog, k, i, cols)
        if w:
            o["values"][k] = _b(s.pk, s.pk.raw_add(_ct(s.pk, o["values"][k]),
                                                   s.pk.raw_mul(vi, -w)))
            o["tags"][k] = _b(s.pk, s.pk.raw_add(_ct(s.pk, o["tags"][k]),
                                                 s.pk.raw_mul(ti, -w)))
    return res


def cheat_duplicate_input(s: Scenario, rng: Csprng) -> dict[str, Any]:
    j = _pick_owner(s, rng)
    i, k = _pick_input(s, j, rng)
    res = evaluate(s.prog, s.batches)
    o, cols = res["outputs"][j], s.batches[j]["cols"]
    w = _weight(s.prog, k, i, cols)
    vi, ti = _ct(s.pk, s.batches[j]["values"][i]), _ct(s.pk, s.batches[j]["tags"][i])
    o["values"][k] = _b(s.pk, s.pk.raw_add(_ct(s.pk, o["values"][k]), s.pk.raw_mul(vi, w)))
    o["tags"][k] = _b(s.pk, s.pk.raw_add(_ct(s.pk, o["tags"][k]), s.pk.raw_mul(ti, w)))
    return res


def cheat_drop_input_from_batch(s: Scenario, rng: Csprng) -> dict[str, Any]:
    # drop row r: shift the last row into its place and remove the last row.
    j = _pick_owner(s, rng)
    cols = s.batches[j]["cols"]

    def edit(vals: list[bytes], tags: list[bytes]) -> None:
        # replace an input by the encryption of zero with a fresh (unauthenticated) tag
        i = int(rng.below(len(vals), 1)[0])
        vals[i] = _b(s.pk, s.pk.raw_encrypt(0, rng=rng))
        tags[i] = _b(s.pk, s.pk.raw_encrypt(0, rng=rng))

    del cols
    return _with_inputs(s, j, edit)


def cheat_wrong_weights(s: Scenario, rng: Csprng) -> dict[str, Any]:
    p = s.prog
    d = int(rng.below(2**20, 1)[0]) + 1
    if p.kind in ("weighted_sum", "score"):
        ws = list(p.weights)
        ws[int(rng.below(len(ws), 1)[0])] += d
        wrong = LinearProgram(p.kind, weights=tuple(ws), offset=p.offset,
                              weight_scale=p.weight_scale)
    elif p.kind == "matvec":
        mat = [list(r) for r in p.matrix]
        r = int(rng.below(len(mat), 1)[0])
        mat[r][int(rng.below(len(mat[r]), 1)[0])] += d
        wrong = LinearProgram("matvec", matrix=tuple(tuple(x) for x in mat),
                              weight_scale=p.weight_scale)
    else:  # sum / colsum: a weight of 1 + d on one input
        return cheat_duplicate_input(s, rng)
    res = evaluate(wrong, s.batches)
    res["program"] = p.digest
    return res


def cheat_replay_old_result(s: Scenario, rng: Csprng) -> dict[str, Any]:
    res = copy.deepcopy(s.old_result)
    if rng.below(2, 1)[0]:
        return res  # replayed as is: names the old task
    res["task"] = s.task  # replayed with the task id and roots rewritten
    for o in res["outputs"]:
        o["root"] = s.comms[o["owner"]]["root"]
    return res


def cheat_swap_inputs(s: Scenario, rng: Csprng) -> dict[str, Any]:
    j = _pick_owner(s, rng)
    n_in = len(s.batches[j]["values"])
    choice = int(rng.below(3, 1)[0])
    # swapping two inputs changes the result only if their weights and values differ
    cols = s.batches[j]["cols"]
    m = s.prog.output_count(s.batches[j]["rows"], cols)
    xs = s.values[j]
    pairs = [(a, b) for a in range(n_in) for b in range(a + 1, n_in)
             if xs[a] != xs[b] and any(_weight(s.prog, k, a, cols) != _weight(s.prog, k, b, cols)
                                       for k in range(m))]

    def edit(vals: list[bytes], tags: list[bytes]) -> None:
        i = int(rng.below(n_in, 1)[0])
        if choice == 0 or n_in == 1:  # value and tag ciphertexts swapped
            vals[i], tags[i] = tags[i], vals[i]
        elif choice == 1 and pairs:  # two inputs of different weights and values swapped
            i, i2 = pairs[int(rng.below(len(pairs), 1)[0])]
            vals[i], vals[i2] = vals[i2], vals[i]
            tags[i], tags[i2] = tags[i2], tags[i]
        elif choice == 1:
            vals[i], tags[i] = tags[i], vals[i]
        else:  # an input from another task, under the same key
            src = s.other_batch
            i2 = int(rng.below(len(src["values"]), 1)[0])
            vals[i], tags[i] = src["values"][i2], src["tags"][i2]

    return _with_inputs(s, j, edit)


def cheat_wrong_root(s: Scenario, rng: Csprng) -> dict[str, Any]:
    res = evaluate(s.prog, s.batches)
    o = res["outputs"][_pick_owner(s, rng)]
    o["root"] = rng.bytes(32)
    return res


def cheat_drop_or_duplicate_owner(s: Scenario, rng: Csprng) -> dict[str, Any]:
    res = evaluate(s.prog, s.batches)
    if len(res["outputs"]) > 1 and rng.below(2, 1)[0]:
        res["outputs"].pop(int(rng.below(len(res["outputs"]), 1)[0]))
    else:
        res["outputs"].append(copy.deepcopy(res["outputs"][0]))
    return res


def cheat_other_key(s: Scenario, rng: Csprng) -> dict[str, Any]:
    res = evaluate(s.prog, s.batches)
    o = res["outputs"][_pick_owner(s, rng)]
    k = int(rng.below(len(o["values"]), 1)[0])
    o["values"][k] = _b(s.pk, mpz(_randint(rng, 8 * s.pk.nsquare_bytes - 16)))
    return res


CHEATS: list[Cheat] = [
    cheat_change_value, cheat_change_value_and_tag, cheat_scale_output,
    cheat_fresh_encryptions, cheat_drop_input, cheat_duplicate_input,
    cheat_drop_input_from_batch, cheat_wrong_weights, cheat_replay_old_result,
    cheat_swap_inputs, cheat_wrong_root, cheat_drop_or_duplicate_owner, cheat_other_key,
]


def _scenarios(kp: PaillierKeypair, rng: Csprng) -> list[Scenario]:
    x = np.array([1.5, -2.25, 0.0, 4.125])
    return [
        _scenario(kp, LinearProgram.sum(), [x], rng),
        _scenario(kp, LinearProgram.sum(), [x, x[:2] * 3, np.array([0.0])], rng),
        _scenario(kp, LinearProgram.colsum(), [x, x[::-1]], rng, squares=True),
        _scenario(kp, LinearProgram.from_reals("weighted_sum", weights=[1, -2, 0.5, 3]),
                  [x, -x], rng),
        _scenario(kp, LinearProgram.from_reals("matvec", matrix=[[1, 0, 2, -1], [3, 3, 3, 3],
                                                                 [0.5, -0.5, 1, 0]]), [x], rng),
        _scenario(kp, LinearProgram.from_reals("score", weights=[2.0, -1.0], offset=0.5),
                  [x.reshape(2, 2)], rng),
        _scenario(kp, LinearProgram("weighted_sum", weights=(5, 5, 5)),
                  [np.array([0, 0, 0])], rng),
    ]


def _verify(s: Scenario, sk: PaillierPrivateKey, result: dict[str, Any]) -> VerifiedResult:
    wire = msgpack.unpackb(msgpack.packb(result, use_bin_type=True), raw=False)
    return verify_result(sk, s.keys, s.task, s.prog, s.comms, wire)


CHECKABLE = {"MAC check failed", "inputs differ from the committed ones",
             "result names another task (replayed or misrouted)"}


def _cheat_campaign(kp: PaillierKeypair, n_cheats: int, seed: bytes) -> dict[str, int]:
    rng = Csprng(seed)
    scenarios = _scenarios(kp, rng)
    for s in scenarios:  # honest nodes always pass
        _verify(s, kp.private_key, evaluate(s.prog, s.batches))
    caught: dict[str, int] = {}
    evidence_checked = 0
    for t in range(n_cheats):
        s = scenarios[t % len(scenarios)]
        cheat = CHEATS[int(rng.below(len(CHEATS), 1)[0])]
        result = cheat(s, rng)
        try:
            _verify(s, kp.private_key, result)
        except CheatingDetected as exc:
            info = exc
        else:
            raise AssertionError(f"{cheat.__name__} not caught (seed {seed.hex()})")
        assert info.suspects == (outsource.COMPUTE_NODE,)
        ev = msgpack.unpackb(info.evidence, raw=False)
        if ev["reason"] in CHECKABLE:
            assert check_evidence(info.evidence, s.pk, result), (cheat.__name__, seed)
            assert not check_evidence(info.evidence, s.pk, evaluate(s.prog, s.batches))
            evidence_checked += 1
        caught[cheat.__name__] = caught.get(cheat.__name__, 0) + 1
    caught["evidence_checked"] = evidence_checked
    return caught


def test_every_cheat_of_a_randomised_campaign_is_caught(vkp: PaillierKeypair) -> None:
    seed = random_bytes(16)  # fresh each run; reported on failure
    caught = _cheat_campaign(vkp, 1200, seed)
    total = sum(v for k, v in caught.items() if k.startswith("cheat_"))
    assert total == 1200, seed.hex()
    assert set(caught) >= {c.__name__ for c in CHEATS}
    assert caught["evidence_checked"] > 300


def test_cheats_are_caught_with_2048_bit_keys(vkp2048: PaillierKeypair) -> None:
    caught = _cheat_campaign(vkp2048, 40, random_bytes(16))
    assert sum(v for k, v in caught.items() if k.startswith("cheat_")) == 40


def test_evidence_against_an_honest_node_does_not_check(vkp: PaillierKeypair) -> None:
    rng = Csprng(b"honest-evidence-")
    s = _scenarios(vkp, rng)[0]
    honest = evaluate(s.prog, s.batches)
    with pytest.raises(CheatingDetected) as info:
        _verify(s, vkp.private_key, cheat_change_value(s, rng))
    # the same evidence does not convict the honest answer
    assert not check_evidence(info.value.evidence, s.pk, honest)
    ev = msgpack.unpackb(info.value.evidence, raw=False)
    ev["seed"] = rng.bytes(32)  # a lying verifier revealing another key
    assert not check_evidence(msgpack.packb(ev, use_bin_type=True), s.pk, honest)
    assert not check_evidence(b"\x00garbage", s.pk, honest)


def test_verification_does_constant_work_per_sum(vkp: PaillierKeypair,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Sums over 10^4 values: evaluation does 2*10^4 ciphertext multiplications; the
    verifier does 2 decryptions and reads no input ciphertext (it never gets them)."""
    pk, sk = vkp.public_key, vkp.private_key
    n_values = 10_000
    keys, task = TaskKeys(), b"count-task"
    batch, comm = prepare(pk, keys.owner_key(task, 0, pk.n), task, 0,
                          np.arange(n_values, dtype=np.int64))
    muls = {"eval": 0}
    real_sum = PaillierPublicKey.raw_sum

    def counting_sum(self: PaillierPublicKey, cs: Any) -> mpz:
        cs = list(cs)
        muls["eval"] += len(cs)
        return real_sum(self, cs)

    monkeypatch.setattr(PaillierPublicKey, "raw_sum", counting_sum)
    result = evaluate(LinearProgram.sum(), [batch])
    assert muls["eval"] == 2 * n_values
    decs = {"n": 0}
    real_dec = PaillierPrivateKey.raw_decrypt

    def counting_dec(self: PaillierPrivateKey, c: int) -> mpz:
        decs["n"] += 1
        return real_dec(self, c)

    monkeypatch.setattr(PaillierPrivateKey, "raw_decrypt", counting_dec)
    muls["eval"] = 0
    r = verify_result(sk, keys, task, LinearProgram.sum(), [comm], result)
    assert r.total == (n_values * (n_values - 1) // 2,)
    assert decs["n"] == 2 and muls["eval"] == 0


def test_malformed_messages_are_refused(vkp: PaillierKeypair) -> None:
    keys, task = TaskKeys(), b"t"
    mac = keys.owner_key(task, 0, vkp.public_key.n)
    batch, comm = prepare(vkp.public_key, mac, task, 0, DATA)
    with pytest.raises(ValidationError):
        evaluate(LinearProgram.sum(), [{**batch, "v": 99}])
    with pytest.raises(ValidationError):
        evaluate(LinearProgram.sum(), [batch, batch])
    with pytest.raises(ValidationError):
        evaluate(LinearProgram.sum(), [{**batch, "values": [b"\x01"] * 6}])
    with pytest.raises(ValidationError):
        prepare(vkp.public_key, keys.owner_key(task, 0, 15), task, 0, DATA)
    with pytest.raises(ValidationError):
        verify_result(vkp.private_key, keys, task, LinearProgram.sum(),
                      [{**comm, "task": b"x"}], evaluate(LinearProgram.sum(), [batch]))


def test_prepare_accepts_an_external_encryptor(vkp: PaillierKeypair) -> None:
    pk = vkp.public_key
    calls = []

    def enc(ms: list[int]) -> list[bytes]:
        calls.append(len(ms))
        return [bytes(c.to_bytes(pk.nsquare_bytes, "big")) for c in pk.raw_encrypt_many(ms)]

    keys, task = TaskKeys(), b"ext"
    batch, comm = prepare(pk, keys.owner_key(task, 0, pk.n), task, 0, DATA,
                          encrypt_many=enc)
    assert calls == [6, 6]
    r = verify_result(vkp.private_key, keys, task, LinearProgram.sum(), [comm],
                      evaluate(LinearProgram.sum(), [batch]))
    assert r.values() == [DATA.sum()]
    with pytest.raises(ValidationError):
        prepare(pk, keys.owner_key(task, 0, pk.n), task, 0, DATA,
                encrypt_many=lambda ms: enc(ms)[:-1])
