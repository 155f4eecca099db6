"""The wire format: round trips in random fragments; every malformed frame is a WireError.

The Hypothesis tests here generate well over 10^4 cases in total (see ``FUZZ_CASES``); they
exercise the pure decoder, never sockets, so they stay fast.
"""

from __future__ import annotations

import itertools
import struct

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet.errors import WireError
from metisnet.net.wire import (
    DTYPES,
    KIND_BULK,
    KIND_DATA,
    KIND_PING,
    PREFIX_SIZE,
    VERSION,
    FrameDecoder,
    HeadDecoder,
    HeadEncoder,
    WireLimits,
    decode_header,
    decode_prefix,
    encode_frame,
    encode_head,
)

# Generated cases per test, weighted towards the cheap ones: 10,500 in total (>= 10^4).
FUZZ_CASES = {"fragments": 500, "garbage": 3500, "mutated": 1500, "headers": 700,
              "prefixes": 4000, "head_encoder": 300, "head_decoder": 400}


def fuzz(name: str) -> settings:
    return settings(max_examples=FUZZ_CASES[name], deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


LIMITS = WireLimits(max_header=512, max_payload=1 << 16)

_dtypes = st.sampled_from(sorted(DTYPES)).map(np.dtype)
_arrays = _dtypes.flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    elements=None if dt.kind != "f" else st.floats(allow_nan=False, width=dt.itemsize * 8)))
_tags = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp",
                                                                  "Cf", "Co", "Cn", "Zs")),
                max_size=20)
_sessions = st.binary(max_size=32)


def _header(fields: list[object]) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def _frame(header: bytes, payload: bytes = b"", *, magic: bytes = b"MN",
           plen: int | None = None) -> bytes:
    n = len(payload) if plen is None else plen
    return struct.pack(">2sHQ", magic, len(header), n) + header + payload


def _feed_in_pieces(data: bytes, cuts: list[int], limits: WireLimits = LIMITS) -> list:
    dec = FrameDecoder(limits)
    out = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        out.extend(dec.feed(data[a:b]))
    dec.close()
    return out


# --------------------------------------------------------------------------- round trips


@fuzz("fragments")
@given(arrays=st.lists(st.tuples(_sessions, _tags, _arrays), min_size=1, max_size=4),
       cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12))
def test_frames_in_random_fragments_decode_to_what_was_sent(arrays, cuts) -> None:
    stream = b"".join(encode_frame(s, t, a, limits=LIMITS) for s, t, a in arrays)
    frames = _feed_in_pieces(stream, cuts)
    assert len(frames) == len(arrays)
    for f, (s, t, a) in zip(frames, arrays, strict=True):
        assert f.header.session == s and f.header.tag == t and f.header.kind == KIND_DATA
        assert f.array.shape == a.shape
        assert f.array.dtype == a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        assert np.array_equal(f.array, a)


def test_byte_by_byte_and_big_endian_input() -> None:
    a = np.arange(12, dtype=">u4").reshape(3, 4)
    data = encode_frame(b"sid", "step", a) + encode_frame(b"sid", "", None, kind=KIND_PING)
    dec = FrameDecoder()
    out = []
    for i in range(len(data)):
        out.extend(dec.feed(data[i:i + 1]))
    assert [f.header.kind for f in out] == [KIND_DATA, KIND_PING]
    assert out[0].array.dtype == np.dtype("<u4") and np.array_equal(out[0].array, a)
    assert out[1].array.size == 0


def test_received_arrays_are_writable_and_zero_copy_sized() -> None:
    a = np.arange(1000, dtype=np.uint64)
    (f,) = FrameDecoder().feed(encode_frame(b"s", "t", a))
    f.array[0] = 7  # the decoder hands over its own buffer: writable, no extra copy
    assert f.array.base is not None


# --------------------------------------------------------------------------- refusals


def test_truncated_frame_gives_clear_error_on_close_not_a_hang() -> None:
    data = encode_frame(b"s", "t", np.arange(10, dtype=np.uint64))
    for k in range(1, len(data)):
        dec = FrameDecoder()
        assert dec.feed(data[:k]) == []
        with pytest.raises(WireError, match="stream ended inside a frame"):
            dec.close()


def test_oversized_payload_refused_at_the_prefix_before_buffering() -> None:
    dec = FrameDecoder(WireLimits(max_payload=1024))
    prefix = struct.pack(">2sHQ", b"MN", 20, 1 << 40)
    with pytest.raises(WireError, match="exceeds the frame cap"):
        dec.feed(prefix)
    with pytest.raises(WireError, match="already failed"):
        dec.feed(b"more")


def test_oversized_header_refused() -> None:
    with pytest.raises(WireError, match="header length"):
        decode_prefix(struct.pack(">2sHQ", b"MN", 5000, 0), WireLimits(max_header=1024))
    with pytest.raises(WireError, match="header length"):
        decode_prefix(struct.pack(">2sHQ", b"MN", 0, 0))
    with pytest.raises(WireError, match="exceeds the cap"):
        encode_head(b"s", "t" * 100, np.zeros(1), limits=WireLimits(max_header=32))


def test_wrong_version_refused() -> None:
    h = _header([VERSION + 1, KIND_DATA, b"s", "t", 0, "<u8", [1]])
    with pytest.raises(WireError, match="unsupported wire version"):
        FrameDecoder().feed(_frame(h, bytes(8)))


def test_bad_magic_refused() -> None:
    h = _header([VERSION, KIND_DATA, b"s", "t", 0, "<u8", [1]])
    with pytest.raises(WireError, match="magic"):
        FrameDecoder().feed(_frame(h, bytes(8), magic=b"XX"))


@pytest.mark.parametrize(
    ("fields", "payload", "message"),
    [
        ([VERSION, 9, b"s", "t", 0, "<u8", [1]], 8, "kind"),
        ([True, KIND_DATA, b"s", "t", 0, "<u8", [1]], 8, "version"),
        ([VERSION, KIND_DATA, "s", "t", 0, "<u8", [1]], 8, "session id"),
        ([VERSION, KIND_DATA, b"s" * 65, "t", 0, "<u8", [1]], 8, "msgpack|session"),
        ([VERSION, KIND_DATA, b"s", "t" * 200, 0, "<u8", [1]], 8, "tag|msgpack"),
        ([VERSION, KIND_DATA, b"s", "t\x00", 0, "<u8", [1]], 8, "non-printable"),
        ([VERSION, KIND_DATA, b"s", 5, 0, "<u8", [1]], 8, "tag must be a string"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "|O", [1]], 8, "not allowed"),
        ([VERSION, KIND_DATA, b"s", "t", 0, ">u8", [1]], 8, "not allowed"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<U4", [1]], 16, "not allowed"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<u8", [-1]], 8, "invalid dimension"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<u8", [1.0]], 8, "invalid dimension"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<u8", [2]], 8, "needs 16 bytes"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<u8", [1] * 9], 8, "msgpack|shape"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<u8", 1], 8, "shape"),
        ([VERSION, KIND_PING, b"s", "t", 0, "|u1", [3]], 3, "ping"),
        ([VERSION, KIND_DATA, b"s", "t", 0, "<u8"], 8, "7 fields"),
        ([VERSION, KIND_DATA, b"s", "t", -1, "<u8", [1]], 8, "sequence"),
        ([VERSION, KIND_DATA, b"s", "t", 2**63, "<u8", [1]], 8, "sequence"),
        ({"v": 1}, 8, "msgpack|7 fields"),
    ],
)
def test_invalid_header_fields_refused(fields, payload, message) -> None:
    with pytest.raises(WireError, match=message):
        FrameDecoder().feed(_frame(_header(fields), bytes(payload)))


def test_ext_types_and_garbage_msgpack_refused() -> None:
    ext = msgpack.packb([VERSION, msgpack.ExtType(5, b"x"), b"", "", 0, "|u1", [0]])
    with pytest.raises(WireError):
        decode_header(ext, 0)
    with pytest.raises(WireError, match="not valid msgpack"):
        decode_header(b"\xc1\xc1\xc1", 0)
    with pytest.raises(WireError, match="not valid msgpack"):
        decode_header(_header([VERSION, 0, b"", "", 0, "|u1", [0]]) + b"\x00", 0)


def test_encoder_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(WireError, match="cannot be sent"):
        encode_frame(b"s", "t", np.array(["a"], dtype=object))
    with pytest.raises(WireError, match="cannot be sent"):
        encode_frame(b"s", "t", np.zeros(2, dtype=np.float16))
    with pytest.raises(WireError, match="exceeds the frame cap"):
        encode_frame(b"s", "t", np.zeros(100, dtype=np.uint64), limits=WireLimits(max_payload=8))
    with pytest.raises(WireError, match="session id"):
        encode_frame(b"s" * 65, "t", None)


# --------------------------------------------------------------------------- fuzzing


def _decode_all_or_wire_error(data: bytes, cuts: list[int]) -> None:
    try:
        _feed_in_pieces(data, cuts)
    except WireError as exc:
        assert str(exc)  # a message a person can act on


@fuzz("garbage")
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_garbage_bytes_only_ever_raise_wire_error(data, cuts) -> None:
    _decode_all_or_wire_error(data, cuts)


@fuzz("mutated")
@given(valid=st.tuples(_sessions, _tags, _arrays), flips=st.lists(
    st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 1 << 16), cuts=st.lists(st.integers(0, 1 << 16), max_size=4))
def test_mutated_valid_frames_decode_or_raise_wire_error(valid, flips, cut, cuts) -> None:
    data = bytearray(encode_frame(*valid, limits=LIMITS))
    for pos, val in flips:
        data[pos % len(data)] = val
    data = data[: max(1, cut % (len(data) + 1))]
    _decode_all_or_wire_error(bytes(data), cuts)


_msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=80),
    lambda kids: st.lists(kids, max_size=9) | st.dictionaries(st.text(max_size=4), kids,
                                                              max_size=3),
    max_leaves=6,
)


@fuzz("headers")
@given(fields=st.lists(_msgpack_values, min_size=0, max_size=8),
       plen=st.integers(0, 1 << 17))
def test_arbitrary_msgpack_headers_are_validated(fields, plen) -> None:
    try:
        header = decode_header(_header(fields), plen, LIMITS)
    except WireError:
        return
    assert header.dtype.str in DTYPES
    assert header.nbytes == plen
    assert all(d >= 0 for d in header.shape)


@fuzz("prefixes")
@given(hlen=st.integers(0, 0xFFFF), plen=st.integers(0, 2**64 - 1),
       magic=st.sampled_from([b"MN", b"NM", b"\x00\x00"]))
def test_prefixes_respect_the_caps(hlen, plen, magic) -> None:
    prefix = struct.pack(">2sHQ", magic, hlen, plen)
    try:
        h, p = decode_prefix(prefix, LIMITS)
    except WireError:
        return
    assert magic == b"MN" and 0 < h <= LIMITS.max_header and p <= LIMITS.max_payload
    assert len(prefix) == PREFIX_SIZE


@fuzz("head_encoder")
@given(session=_sessions, items=st.lists(
    st.tuples(st.sampled_from(["a", "b", "step:1"]) | _tags, _arrays,
              st.integers(0, 2**63 - 1), st.sampled_from([KIND_DATA, KIND_BULK])),
    min_size=1, max_size=6))
def test_head_encoder_matches_encode_head(session, items) -> None:
    enc = HeadEncoder(session, LIMITS)
    for tag, arr, seq, kind in items + items:  # the second pass hits the cache
        try:
            want = encode_head(session, tag, arr, seq=seq, kind=kind, limits=LIMITS)
        except WireError:
            with pytest.raises(WireError):
                enc.encode(tag, arr, seq=seq, kind=kind)
            continue
        head, out = enc.encode(tag, arr, seq=seq, kind=kind)
        assert head == want[0] and out is not None and want[1] is not None
        assert np.array_equal(out, want[1])
        if kind == KIND_DATA:  # the whole small frame, from the frame template when warm
            for s in (seq, seq // 3, 0, 127, 128):
                assert enc.frame(tag, arr, seq=s) == encode_frame(session, tag, arr, seq=s,
                                                                  limits=LIMITS)


def test_head_encoder_frame_refuses_what_encode_frame_refuses() -> None:
    enc = HeadEncoder(b"s", LIMITS)
    arr = np.arange(3, dtype=np.uint64)
    assert enc.frame("t", arr, seq=5) == encode_frame(b"s", "t", arr, seq=5, limits=LIMITS)
    for bad in (-1, 2**63, 1.5, True):  # the warm template checks the number as well
        with pytest.raises(WireError, match="sequence"):
            enc.frame("t", arr, seq=bad)  # type: ignore[arg-type]
    swapped = arr.astype(">u8")  # converted, not templated, and still the same frame
    assert enc.frame("t", swapped, seq=6) == encode_frame(b"s", "t", arr, seq=6,
                                                          limits=LIMITS)
    strided = np.arange(6, dtype=np.uint64)[::2]
    assert enc.frame("t", strided, seq=7) == encode_frame(b"s", "t", strided, seq=7,
                                                          limits=LIMITS)


def _same_decoding(dec: HeadDecoder, head: bytes, plen: int) -> None:
    """``dec`` returns what decode_header returns, or both raise WireError."""
    try:
        want = decode_header(head, plen, LIMITS)
    except WireError:
        with pytest.raises(WireError):
            dec.decode(memoryview(head), plen)
        return
    got = dec.decode(memoryview(head), plen)
    assert got == want and type(got.seq) is int and type(got.shape) is tuple
    _same_decoding_in(dec, head, plen)


def _same_decoding_in(dec: HeadDecoder, head: bytes, plen: int) -> None:
    """``dec.decode_in`` on ``head`` amid other bytes returns what decode_header returns,
    or both raise WireError (its in-place check of the last layout included)."""
    for pad in (0, 3):
        buf = bytearray(b"\x97" * pad + head + b"\xc4\x00")
        try:
            want = decode_header(head, plen, LIMITS)
        except WireError:
            with pytest.raises(WireError):
                dec.decode_in(buf, pad, pad + len(head), plen)
            continue
        got = dec.decode_in(buf, pad, pad + len(head), plen)
        assert got == want and type(got.seq) is int and type(got.shape) is tuple


@fuzz("head_decoder")
@given(session=_sessions, tag=st.sampled_from(["a", "step:1", "x" * 40]) | _tags,
       arr=_arrays, seqs=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4),
       flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
       dplen=st.sampled_from([0, 0, 1, -1]))
def test_head_decoder_agrees_with_decode_header(session, tag, arr, seqs, flips,
                                                dplen) -> None:
    """The cached decoding accepts exactly what the full one accepts, warm or cold."""
    enc, dec = HeadEncoder(session, LIMITS), HeadDecoder(LIMITS)
    try:
        head, out = enc.encode(tag, arr, seq=0)
    except WireError:
        return
    plen = out.nbytes
    _same_decoding(dec, head[PREFIX_SIZE:], plen)  # warms the cache
    for seq in seqs:  # any sequence number, also ones outside 0..SEQ_MAX
        header = msgpack.packb([VERSION, KIND_DATA, session, tag, seq, out.dtype.str,
                                list(out.shape)], use_bin_type=True)
        _same_decoding(dec, header, plen)
        _same_decoding(dec, header, max(0, plen + dplen))
        bad = bytearray(header)
        for pos, val in flips:
            if pos < len(bad):
                bad[pos] = val
        _same_decoding(dec, bytes(bad), plen)
        _same_decoding_in(dec, header, plen)  # right after a bad one, and warm again
        _same_decoding_in(dec, bytes(bad), plen)
        _same_decoding_in(dec, header[:-1], plen)  # cut short: shape bytes missing


def test_head_decoder_validates_what_it_has_not_seen() -> None:
    dec = HeadDecoder(LIMITS)
    good = _header([VERSION, KIND_DATA, b"s", "t", 7, "<u8", [2]])
    assert dec.decode(good, 16).seq == 7
    assert dec.decode(_header([VERSION, KIND_DATA, b"s", "t", 300, "<u8", [2]]), 16).seq == 300
    with pytest.raises(WireError, match="needs 16 bytes"):
        dec.decode(good, 8)  # the cached layout, a payload length that does not fit
    with pytest.raises(WireError, match="version"):
        dec.decode(_header([VERSION + 1, KIND_DATA, b"s", "t", 7, "<u8", [2]]), 16)
    with pytest.raises(WireError, match="sequence"):
        dec.decode(_header([VERSION, KIND_DATA, b"s", "t", 2**63, "<u8", [2]]), 16)
    with pytest.raises(WireError, match="shape"):  # True is not a dimension
        dec.decode(_header([VERSION, KIND_DATA, b"s", "t", 7, "<u8", [True]]), 8)


def test_head_encoder_refuses_what_encode_head_refuses() -> None:
    enc = HeadEncoder(b"s", LIMITS)
    with pytest.raises(WireError, match="tag must be a string"):
        enc.encode(5, np.zeros(1), seq=0)  # type: ignore[arg-type]
    with pytest.raises(WireError, match="sequence"):
        enc.encode("t", np.zeros(1), seq=-1)
    with pytest.raises(WireError, match="sequence"):
        enc.encode("t", np.zeros(1), seq=2**63)
    with pytest.raises(WireError, match="cannot be sent"):
        enc.encode("t", np.zeros(1, dtype=np.complex64), seq=0)
    with pytest.raises(WireError, match="frame cap"):
        enc.encode("t", np.zeros(LIMITS.max_payload // 8 + 1), seq=0)
    with pytest.raises(WireError, match="session id"):
        HeadEncoder("s")  # type: ignore[arg-type]


def test_bulk_frames_are_refused_on_a_plain_stream() -> None:
    data = encode_frame(b"s", "t", np.zeros(4), kind=KIND_BULK)
    with pytest.raises(WireError, match="bulk frame on a plain byte stream"):
        FrameDecoder(LIMITS).feed(data)
