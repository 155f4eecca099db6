"""The wire format: length-prefixed frames with a small msgpack header and raw array bytes.

A frame is::

    prefix   12 bytes   magic b"MN" | u16 header length | u64 payload length   (big endian)
    header   msgpack    [version, kind, session id (bin), step tag (str), seq (int),
                         dtype (str), shape]
    payload  raw bytes  the array in C order, little endian, exactly prod(shape) * itemsize

Nothing on the wire is ever unpickled. The header is decoded by msgpack with
``raw=False, strict_map_key=True``, no extension types and tight ``max_*_len`` limits, then
every field is checked: the version, the kind, the session id length, the tag length and
characters, the sequence number (the n-th message under one tag from one sender in one
session carries n, so order survives a change of connection), the dtype against an
allow-list, the shape's dimensions and that their product times the item size equals the
payload length announced in the prefix. Frame and header
sizes are capped (:class:`WireLimits`) before a byte of either is buffered, so a peer cannot
make a node allocate more than the caps. Every failure raises
:class:`~metisnet.errors.WireError` with a message naming the field.

:class:`FrameDecoder` is the pure, incremental decoder (fed bytes in any fragmentation);
the TLS transport uses :func:`decode_prefix` and :func:`decode_header` directly so that it
can receive a payload straight into the numpy array that is handed to the caller.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import msgpack
import numpy as np
from numpy.typing import NDArray

from metisnet.errors import WireError

__all__ = [
    "DTYPES",
    "KINDS",
    "KIND_BULK",
    "KIND_DATA",
    "KIND_PING",
    "PREFIX_SIZE",
    "SEQ_MAX",
    "SESSION_ID_MAX",
    "TAG_MAX",
    "VERSION",
    "Frame",
    "FrameDecoder",
    "HeadDecoder",
    "HeadEncoder",
    "Header",
    "WireLimits",
    "decode_header",
    "decode_prefix",
    "encode_frame",
    "encode_head",
]

#: Version of the wire format; a frame of any other version is refused.
VERSION: Final = 1
#: Frame kinds: an array for a session, a keep-alive without payload, or an array whose
#: payload follows in bulk records (:mod:`metisnet.net.bulk`; only on a TLS link that
#: agreed bulk keys: a plain byte stream never carries it, see :class:`FrameDecoder`).
KIND_DATA: Final = 0
KIND_PING: Final = 1
KIND_BULK: Final = 2
KINDS: Final = frozenset({KIND_DATA, KIND_PING, KIND_BULK})

_MAGIC: Final = b"MN"
_PREFIX = struct.Struct(">2sHQ")
PREFIX_SIZE: Final = _PREFIX.size  # 12

#: Longest session id and step tag accepted (bytes / characters).
SESSION_ID_MAX: Final = 64
TAG_MAX: Final = 128
#: Largest sequence number.
SEQ_MAX: Final = (1 << 63) - 1

#: dtypes allowed on the wire, as little-endian numpy type strings.
DTYPES: Final = frozenset(
    {"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"}
)
_MAX_NDIM: Final = 8
_DTYPE_OBJS: Final = {s: np.dtype(s) for s in DTYPES}
#: every sendable dtype (either byte order) -> its little-endian wire dtype
_LE: Final[dict[np.dtype[Any], np.dtype[Any]]] = {
    **{d.newbyteorder(">"): d for d in _DTYPE_OBJS.values()},
    **{d: d for d in _DTYPE_OBJS.values()},
}


@dataclass(frozen=True)
class WireLimits:
    """Caps applied to every frame before it is buffered."""

    max_header: int = 1024
    max_payload: int = 1 << 30

    def __post_init__(self) -> None:
        if not 16 <= self.max_header <= 0xFFFF:
            raise WireError("max_header must be between 16 and 65535 bytes")
        if not 0 <= self.max_payload < 1 << 62:
            raise WireError("max_payload must be non-negative and below 2**62")


class Header(NamedTuple):
    """A validated frame header."""

    kind: int
    session: bytes
    tag: str
    seq: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return _nbytes(self.dtype, self.shape)


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its header and the array it carried."""

    header: Header
    array: NDArray[Any]


def _nbytes(dtype: np.dtype[Any], shape: tuple[int, ...]) -> int:
    return dtype.itemsize * math.prod(shape)


def _wire_dtype(array: NDArray[Any]) -> tuple[str, NDArray[Any]]:
    """The wire type string of ``array`` and a C-contiguous little-endian view or copy."""
    dt = array.dtype
    le = _LE.get(dt)
    if le is None:
        raise WireError(f"dtype {dt} cannot be sent; allowed: {sorted(DTYPES)}")
    if dt is not le or not array.flags.c_contiguous:
        array = np.asarray(array, dtype=le, order="C")  # keeps 0-d arrays 0-d
    return le.str, array


def encode_head(
    session: bytes,
    tag: str,
    array: NDArray[Any] | None,
    *,
    seq: int = 0,
    kind: int = KIND_DATA,
    limits: WireLimits | None = None,
) -> tuple[bytes, NDArray[Any] | None]:
    """Prefix and header of a frame, and the contiguous array whose bytes follow them.

    The caller sends the returned bytes, then ``memoryview(array).cast("B")``: the payload
    is never copied into a joined buffer.
    """
    lim = limits or _DEFAULT_LIMITS
    if not isinstance(session, bytes) or len(session) > SESSION_ID_MAX:
        raise WireError(f"session id must be bytes of at most {SESSION_ID_MAX}")
    _check_tag(tag)
    if kind not in KINDS:
        raise WireError(f"unknown frame kind {kind}")
    if not 0 <= seq <= SEQ_MAX:
        raise WireError(f"sequence number outside 0..{SEQ_MAX}")
    shape: tuple[int, ...]
    if array is None:
        dtype_str, shape, arr, nbytes = "|u1", (0,), None, 0
    else:
        dtype_str, arr = _wire_dtype(array)
        shape = arr.shape
        if len(shape) > _MAX_NDIM:
            raise WireError(f"arrays of more than {_MAX_NDIM} dimensions cannot be sent")
        nbytes = arr.nbytes
    if nbytes > lim.max_payload:
        raise WireError(f"array of {nbytes} bytes exceeds the frame cap of {lim.max_payload}")
    header = _packb([VERSION, kind, session, tag, seq, dtype_str, shape])
    if len(header) > lim.max_header:
        raise WireError(f"header of {len(header)} bytes exceeds the cap of {lim.max_header}")
    return _PREFIX.pack(_MAGIC, len(header), nbytes) + header, arr


class HeadEncoder:
    """:func:`encode_head` for one session, reusing the packed parts of earlier headers.

    A session sends the same (tag, dtype, shape) again and again with a growing sequence
    number; the header fields other than the sequence number are validated and packed once
    per such key (at most :attr:`KEEP` keys are remembered).
    """

    KEEP: Final = 256

    def __init__(self, session: bytes, limits: WireLimits | None = None) -> None:
        if not isinstance(session, bytes) or len(session) > SESSION_ID_MAX:
            raise WireError(f"session id must be bytes of at most {SESSION_ID_MAX}")
        self._session = session
        self._limits = limits or _DEFAULT_LIMITS
        self._parts: dict[tuple[str, int, str, tuple[int, ...]], tuple[bytes, bytes]] = {}
        #: (tag, dtype, shape) -> the packed header around the sequence number, their
        #: joint length and the payload length, for arrays sent as they are
        self._frames: dict[tuple[str, np.dtype[Any], tuple[int, ...]],
                           tuple[bytes, bytes, int, int]] = {}

    def encode(self, tag: str, array: NDArray[Any], *, seq: int,
               kind: int = KIND_DATA) -> tuple[bytes, NDArray[Any]]:
        """Prefix and header of a frame carrying ``array``; as :func:`encode_head`."""
        if type(tag) is not str:
            _check_tag(tag)
        dtype_str, arr = _wire_dtype(array)
        key = (tag, kind, dtype_str, arr.shape)
        parts = self._parts.get(key)
        if parts is None:  # validate everything once, the way encode_head does
            encode_head(self._session, tag, arr, seq=0, kind=kind, limits=self._limits)
            if len(self._parts) >= self.KEEP:
                self._parts.clear()
            parts = self._parts[key] = (
                b"\x97" + _packb(VERSION) + _packb(kind) + _packb(self._session)
                + _packb(tag), _packb(dtype_str) + _packb(arr.shape))
        if type(seq) is not int or not 0 <= seq <= SEQ_MAX:
            raise WireError(f"sequence number outside 0..{SEQ_MAX}")
        header = parts[0] + _packb(seq) + parts[1]
        if len(header) > self._limits.max_header:
            raise WireError(f"header of {len(header)} bytes exceeds the cap of "
                            f"{self._limits.max_header}")
        return _PREFIX.pack(_MAGIC, len(header), arr.nbytes) + header, arr

    def frame(self, tag: str, array: NDArray[Any], *, seq: int) -> bytes:
        """A whole ``KIND_DATA`` frame carrying ``array``: ``encode``'s prefix and header
        followed by the array's bytes, as one bytes object (for small arrays).

        An array that needs no conversion (a little-endian wire dtype, C-contiguous) whose
        (tag, dtype, shape) was encoded before reuses that header around a new sequence
        number.
        """
        parts = self._frames.get((tag, array.dtype, array.shape))
        if (parts is None or not array.flags.c_contiguous or type(seq) is not int
                or not 0 <= seq <= SEQ_MAX):
            head, arr = self.encode(tag, array, seq=seq)
            if arr is array and type(tag) is str:
                before, after = self._parts[(tag, KIND_DATA, arr.dtype.str, arr.shape)]
                if len(before) + len(after) + 9 <= self._limits.max_header:
                    if len(self._frames) >= self.KEEP:
                        self._frames.clear()
                    self._frames[(tag, arr.dtype, arr.shape)] = (
                        before, after, len(before) + len(after), arr.nbytes)
            return head + arr.tobytes()
        before, after, hlen, nbytes = parts
        packed: bytes = _packb(seq)
        return (_PREFIX.pack(_MAGIC, hlen + len(packed), nbytes) + before + packed + after
                + array.tobytes())


def encode_frame(session: bytes, tag: str, array: NDArray[Any] | None, *, seq: int = 0,
                 kind: int = KIND_DATA, limits: WireLimits | None = None) -> bytes:
    """A whole frame as one bytes object (tests and small messages)."""
    head, arr = encode_head(session, tag, array, seq=seq, kind=kind, limits=limits)
    return head if arr is None else head + arr.tobytes()


def _check_tag(tag: object) -> None:
    if not isinstance(tag, str):
        raise WireError("step tag must be a string")
    if len(tag) > TAG_MAX:
        raise WireError(f"step tag longer than {TAG_MAX} characters")
    if not tag.isprintable():
        raise WireError("step tag contains non-printable characters")


def decode_prefix(data: bytes | bytearray | memoryview,
                  limits: WireLimits | None = None) -> tuple[int, int]:
    """Validate a 12-byte prefix; return (header length, payload length)."""
    lim = limits or _DEFAULT_LIMITS
    if len(data) != PREFIX_SIZE:
        raise WireError(f"frame prefix must be {PREFIX_SIZE} bytes, got {len(data)}")
    magic, hlen, plen = _PREFIX.unpack(data)
    if magic != _MAGIC:
        raise WireError("bad frame magic: not a metisnet frame (stream out of sync?)")
    if hlen == 0 or hlen > lim.max_header:
        raise WireError(f"header length {hlen} outside 1..{lim.max_header}")
    if plen > lim.max_payload:
        raise WireError(f"payload length {plen} exceeds the frame cap of {lim.max_payload}")
    return int(hlen), int(plen)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack extension type {code} is not allowed in a header")


def decode_header(data: bytes | bytearray | memoryview, payload_len: int,
                  limits: WireLimits | None = None) -> Header:
    """Decode and validate a msgpack header against the payload length of its prefix."""
    lim = limits or _DEFAULT_LIMITS
    if len(data) > lim.max_header:
        raise WireError(f"header of {len(data)} bytes exceeds the cap of {lim.max_header}")
    try:
        obj = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=False,
            max_str_len=TAG_MAX * 4, max_bin_len=SESSION_ID_MAX, max_array_len=_MAX_NDIM,
            max_map_len=0, max_ext_len=0, ext_hook=_refuse_ext, timestamp=0,
        )
    except WireError:
        raise
    except Exception as exc:  # msgpack raises several types on malformed input
        raise WireError(f"header is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(obj, tuple) or len(obj) != 7:
        raise WireError("header must be a msgpack array of 7 fields")
    version, kind, session, tag, seq, dtype_str, shape = obj
    if type(version) is not int or version != VERSION:
        raise WireError(f"unsupported wire version {version!r} (this node speaks {VERSION})")
    if type(kind) is not int or kind not in KINDS:
        raise WireError(f"unknown frame kind {kind!r}")
    if not isinstance(session, bytes) or len(session) > SESSION_ID_MAX:
        raise WireError(f"session id must be bytes of at most {SESSION_ID_MAX}")
    _check_tag(tag)
    if type(seq) is not int or not 0 <= seq <= SEQ_MAX:
        raise WireError(f"sequence number {seq!r} outside 0..{SEQ_MAX}")
    if not isinstance(dtype_str, str) or dtype_str not in DTYPES:
        raise WireError(f"dtype {dtype_str!r} is not allowed; allowed: {sorted(DTYPES)}")
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM:
        raise WireError(f"shape must be an array of at most {_MAX_NDIM} dimensions")
    for d in shape:
        if type(d) is not int or d < 0:
            raise WireError(f"shape {shape!r} has an invalid dimension")
    dtype = _DTYPE_OBJS[dtype_str]
    if _nbytes(dtype, shape) != payload_len:
        raise WireError(
            f"shape {shape} of {dtype_str} needs {_nbytes(dtype, shape)} bytes, "
            f"the frame carries {payload_len}"
        )
    if kind == KIND_PING and payload_len:
        raise WireError("a ping frame carries no payload")
    return Header(kind, session, tag, seq, dtype, shape)


_new_tuple: Final = tuple.__new__  # builds a Header without NamedTuple.__new__'s overhead
#: width of a msgpack unsigned integer by its first byte (positive fixints are 0x00..0x7f)
_UINT_WIDTH: Final = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


class HeadDecoder:
    """:func:`decode_header` for one connection, reusing the validation of earlier headers.

    A stream carries the same (kind, session, tag, dtype, shape) again and again with a
    growing sequence number. The raw header bytes before the sequence number and after it
    are the key of a header that passed the full :func:`decode_header`; a header whose
    bytes around the sequence number match such a key byte for byte differs from it only
    in that number, which is decoded and range-checked here. Anything else (another
    layout, or bytes seen for the first time) goes through the full decoding. At most
    :attr:`KEEP` keys are remembered.
    """

    KEEP: Final = 256

    def __init__(self, limits: WireLimits | None = None) -> None:
        self._limits = limits or _DEFAULT_LIMITS
        self._known: dict[tuple[bytes, bytes], tuple[Header, int]] = {}
        #: (bytes before the sequence number, bytes after it, header, payload length) of
        #: the last header :meth:`decode_in` validated
        self._last: tuple[bytes, bytes, Header, int] | None = None

    def decode(self, data: bytes | bytearray | memoryview, payload_len: int) -> Header:
        """As ``decode_header(data, payload_len, limits)``."""
        head = bytes(data)
        split = _split_seq(head)
        if split is None:
            return decode_header(head, payload_len, self._limits)
        before, seq, after = split
        known = self._known.get((before, after))
        if known is not None and seq <= SEQ_MAX and known[1] == payload_len:
            k = known[0]
            return _new_tuple(Header, (k[0], k[1], k[2], seq, k[4], k[5]))
        header = decode_header(head, payload_len, self._limits)
        if len(self._known) >= self.KEEP:
            self._known.clear()
        self._known[(before, after)] = (header, payload_len)
        return header

    def decode_in(self, buf: bytearray, start: int, end: int, payload_len: int) -> Header:
        """As ``decode(buf[start:end], payload_len)``, checking the last layout first.

        The header in ``buf[start:end]`` is compared in place with the bytes around the
        sequence number of the last header that :meth:`decode` validated (no copy); on a
        match only the sequence number is decoded, as in :meth:`decode`.
        """
        last = self._last
        if last is not None:
            before, after, known, plen = last
            i = start + len(before)
            if (payload_len == plen and i < end and buf.startswith(before, start)
                    and buf.endswith(after, start, end)):
                m = buf[i]
                if m < 0x80:
                    if i + 1 + len(after) == end:
                        return _new_tuple(Header, (known[0], known[1], known[2], m,
                                                   known[4], known[5]))
                else:
                    w = _UINT_WIDTH.get(m)
                    if w is not None and i + 1 + w + len(after) == end:
                        seq = int.from_bytes(buf[i + 1:i + 1 + w], "big")
                        if seq <= SEQ_MAX:
                            return _new_tuple(Header, (known[0], known[1], known[2], seq,
                                                       known[4], known[5]))
        head = bytes(buf[start:end])
        header = self.decode(head, payload_len)
        split = _split_seq(head)
        if split is not None:
            self._last = (split[0], split[2], header, payload_len)
        return header


def _split_seq(head: bytes) -> tuple[bytes, int, bytes] | None:
    """(bytes before the sequence number, its value, bytes after it) of a header laid out
    the way :class:`HeadEncoder` writes it (7-array, fixint version and kind, bin8 session
    id, fixstr or str8 tag, unsigned sequence number); None for any other layout."""
    try:
        if head[0] != 0x97 or head[3] != 0xC4:
            return None
        i = 5 + head[4]
        t = head[i]
        if 0xA0 <= t <= 0xBF:
            i += 1 + (t & 0x1F)
        elif t == 0xD9:
            i += 2 + head[i + 1]
        else:
            return None
        m = head[i]
        if m < 0x80:
            return head[:i], m, head[i + 1:]
        w = _UINT_WIDTH.get(m)
        if w is None or len(head) < i + 1 + w:
            return None
        return head[:i], int.from_bytes(head[i + 1:i + 1 + w], "big"), head[i + 1 + w:]
    except IndexError:
        return None


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes in any fragmentation, get whole frames back.

    Memory stays bounded by the limits: a prefix announcing more than the caps raises
    before anything past it is buffered. After an error the decoder refuses further input
    (the stream is out of sync; the connection must be closed).
    """

    def __init__(self, limits: WireLimits | None = None) -> None:
        self._limits = limits or _DEFAULT_LIMITS
        self._buf = bytearray()
        self._need: tuple[int, int] | None = None  # (header len, payload len) once known
        self._header: Header | None = None  # once decoded, while the payload is awaited
        self._failed = False

    @property
    def pending(self) -> int:
        """Bytes buffered towards the next frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self._failed:
            raise WireError("decoder already failed; the stream is out of sync")
        self._buf += data
        out: list[Frame] = []
        try:
            while True:
                if self._need is None:
                    if len(self._buf) < PREFIX_SIZE:
                        break
                    self._need = decode_prefix(self._buf[:PREFIX_SIZE], self._limits)
                hlen, plen = self._need
                end = PREFIX_SIZE + hlen + plen
                if len(self._buf) < PREFIX_SIZE + hlen:
                    break
                header = self._header
                if header is None:
                    header = self._header = decode_header(
                        self._buf[PREFIX_SIZE:PREFIX_SIZE + hlen], plen, self._limits)
                    if header.kind == KIND_BULK:
                        raise WireError("a bulk frame on a plain byte stream")
                if len(self._buf) < end:
                    break
                payload = bytearray(self._buf[PREFIX_SIZE + hlen:end])
                del self._buf[:end]
                self._need = self._header = None
                arr = np.frombuffer(payload, dtype=header.dtype).reshape(header.shape)
                out.append(Frame(header, arr))
        except WireError:
            self._failed = True
            raise
        return out

    def close(self) -> None:
        """Declare end of stream; raises WireError if a frame was cut short."""
        if self._buf:
            self._failed = True
            raise WireError(f"stream ended inside a frame ({len(self._buf)} bytes pending)")


_DEFAULT_LIMITS: Final = WireLimits()
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
