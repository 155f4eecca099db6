"""Fuzz the wire decoder for longer than the test suite does.

Feeds the pure frame decoder (no sockets) with valid frames in random fragments, valid
frames with random mutations (bit flips, byte overwrites, truncations, insertions, edited
length fields), random msgpack headers and pure garbage; and the bulk record layer's
opener with sealed records that were flipped, cut, dropped, repeated, reordered or moved
to another position or frame. Every case must either decode to exactly what was encoded
or raise ``WireError``; anything else (another exception, a decoded frame that differs,
a tampered bulk record that opens, unbounded buffering) is reported with a reproducer
seed.

Run: ``python scripts/fuzz_wire.py --cases 1000000 [--seed N]``.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import traceback

import msgpack
import numpy as np

from metisnet.errors import WireError
from metisnet.net.bulk import TAG_SIZE, BulkOpener, BulkSealer
from metisnet.net.wire import DTYPES, PREFIX_SIZE, FrameDecoder, WireLimits, encode_frame

LIMITS = WireLimits(max_header=512, max_payload=1 << 16)
_DTYPES = sorted(DTYPES)


def _random_array(rng: random.Random) -> np.ndarray:
    dt = np.dtype(rng.choice(_DTYPES))
    shape = tuple(rng.randrange(0, 5) for _ in range(rng.randrange(0, 4)))
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    arr = np.frombuffer(rng.randbytes(n), dtype=dt).reshape(shape)
    return arr if dt.kind != "f" else np.nan_to_num(arr)


def _valid(rng: random.Random) -> tuple[bytes, list[tuple[bytes, str, int, np.ndarray]]]:
    items = []
    for _ in range(rng.randrange(1, 4)):
        tag = "".join(rng.choice("abcdefgh_-:0123456789é") for _ in range(rng.randrange(12)))
        items.append((rng.randbytes(rng.randrange(0, 33)), tag, rng.randrange(1 << 40),
                      _random_array(rng)))
    data = b"".join(encode_frame(s, t, a, seq=q, limits=LIMITS) for s, t, q, a in items)
    return data, items


def _feed(data: bytes, rng: random.Random) -> list:
    dec = FrameDecoder(LIMITS)
    out = []
    pos = 0
    while pos < len(data):
        step = rng.choice((1, 2, 3, 7, 12, 64, 1000, len(data)))
        out.extend(dec.feed(data[pos:pos + step]))
        if dec.pending > PREFIX_SIZE + LIMITS.max_header + LIMITS.max_payload:
            raise AssertionError(f"decoder buffered {dec.pending} bytes, past its caps")
        pos += step
    dec.close()
    return out


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(6)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # overwrite a byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:  # truncate
            del buf[rng.randrange(len(buf) + 1):]
        elif op == 3:  # insert junk
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randrange(1, 9))
        elif op == 4 and len(buf) >= PREFIX_SIZE:  # edit the length fields
            hlen, plen = rng.randrange(0x10000), rng.choice((0, 1, 8, 1 << 16, 1 << 63))
            buf[:PREFIX_SIZE] = struct.pack(">2sHQ", b"MN", hlen, plen)
        else:  # swap a slice
            i, j = sorted(rng.randrange(len(buf) + 1) for _ in range(2))
            buf[i:j] = buf[i:j][::-1]
    return bytes(buf)


def _random_header(rng: random.Random) -> bytes:
    pool = [None, True, 0, 1, -1, 2**63, 1.5, "", "t", "<u8", rng.choice(_DTYPES), b"",
            b"sid", [], [1], [2, 3], [-1], {"k": 1}, "x" * 200]
    fields = [rng.choice(pool) for _ in range(rng.randrange(9))]
    if fields and rng.random() < 0.5:
        fields[0] = 1
    payload = msgpack.packb(fields, use_bin_type=True)
    plen = rng.choice((0, 1, 8, 16, 24))
    return struct.pack(">2sHQ", b"MN", len(payload), plen) + payload + rng.randbytes(plen)


def _bulk_case(rng: random.Random) -> None:
    """Seal a few records, tamper (or not), open: exact plaintext or WireError."""
    key = rng.randbytes(32)
    sealer, opener = BulkSealer(key), BulkOpener(key)
    digest = rng.randbytes(32)
    plains = [rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 5))]
    n = len(plains)
    recs = [bytes(sealer.seal(memoryview(p), digest, i, n)) for i, p in enumerate(plains)]
    order, digests, counts = list(range(n)), [digest] * n, [n] * n
    op = rng.randrange(8)
    tampered = True
    if op == 0:
        tampered = False
    elif op == 1:  # flip a bit
        i = rng.randrange(n)
        b = bytearray(recs[i])
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        recs[i] = bytes(b)
    elif op == 2:  # cut or extend a record
        i = rng.randrange(n)
        recs[i] = recs[i][:rng.randrange(len(recs[i]))] if rng.random() < 0.5 else \
            recs[i] + rng.randbytes(rng.randrange(1, 5))
    elif op == 3:  # drop one that is not the last (a cut stream is caught by the frame length)
        if n < 2:
            tampered = False
        else:
            del order[rng.randrange(n - 1)]
    elif op == 4:  # repeat one
        i = rng.randrange(n)
        order.insert(i, order[i])
    elif op == 5:  # swap two different records
        if n < 2 or plains[0] == plains[1]:
            tampered = False
        else:
            order[0], order[1] = order[1], order[0]
    elif op == 6:  # another frame's header
        digests[rng.randrange(n)] = rng.randbytes(32)
    else:  # another record count
        counts = [n + 1] * n
    try:
        for pos, i in enumerate(order):
            rec = recs[i]
            size = len(plains[i]) if op != 2 else max(0, len(rec) - TAG_SIZE)
            dest = bytearray(size)
            opener.open_into(memoryview(rec), digests[pos] if pos < n else digest, pos,
                             counts[pos] if pos < n else n, memoryview(dest))
            if bytes(dest) != plains[i]:
                raise AssertionError("a bulk record opened to other bytes")
    except WireError as exc:
        if not tampered:
            raise AssertionError(f"an untouched bulk record failed: {exc}") from None
        if not str(exc):
            raise AssertionError("WireError without a message") from None
        return
    if tampered:
        raise AssertionError(f"tampered bulk records (op {op}) opened")


def one_case(seed: int) -> None:
    rng = random.Random(seed)
    kind = seed % 5
    if kind == 4:
        _bulk_case(rng)
        return
    if kind == 0:  # valid frames, random fragments: must decode exactly
        data, items = _valid(rng)
        frames = _feed(data, rng)
        if len(frames) != len(items):
            raise AssertionError("wrong number of frames decoded")
        for f, (s, t, q, a) in zip(frames, items, strict=True):
            if (f.header.session, f.header.tag, f.header.seq) != (s, t, q) or \
                    f.array.shape != a.shape or f.array.tobytes() != a.tobytes():
                raise AssertionError("a valid frame decoded differently")
        return
    if kind == 1:
        data = _mutate(_valid(rng)[0], rng)
    elif kind == 2:
        data = _random_header(rng)
    else:
        data = rng.randbytes(rng.randrange(0, 200))
        if rng.random() < 0.5:
            data = b"MN" + data
    try:
        _feed(data, rng)
    except WireError as exc:
        if not str(exc):
            raise AssertionError("WireError without a message") from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100_000, help="number of cases")
    p.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    args = p.parse_args()
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 40)
    t0 = time.monotonic()
    failures = 0
    for k in range(args.cases):
        seed = first + k
        try:
            one_case(seed)
        except Exception:
            failures += 1
            print(f"FAIL seed={seed} (rerun: --seed {seed} --cases 1)", file=sys.stderr)
            traceback.print_exc()
            if failures >= 10:
                break
    dt = time.monotonic() - t0
    print(f"{k + 1} cases from seed {first} in {dt:.1f} s: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
