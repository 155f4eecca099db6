"""The one source of randomness for protocol code: a CSPRNG and an AES-CTR PRG.

* :func:`random_bytes` / :func:`new_key` draw from the operating system's CSPRNG.
* :class:`Prg` expands a 128-bit key into a deterministic AES-128-CTR keystream. Two
  parties holding the same key draw the same values with no communication (used for the
  pairwise keys of replicated sharing: zero-sharings, correlated randomness).
* :class:`Csprng` is what protocol code takes as a parameter: by default it is seeded from
  the OS CSPRNG; tests pass a fixed seed to get known answers.

Never use the ``random`` module or numpy's generators in protocol code; a test enforces it.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from metisnet.errors import ValidationError

__all__ = ["KEY_BYTES", "Csprng", "Prg", "new_key", "random_bytes"]

#: PRG keys and seeds are 128 bits.
KEY_BYTES = 16


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(n)


def new_key() -> bytes:
    """A fresh 128-bit key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def _shape_size(shape: int | tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    shp = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(d < 0 for d in shp):
        raise ValidationError(f"negative dimension in shape {shp}")
    return shp, int(np.prod(shp, dtype=np.int64))


class Prg:
    """AES-128-CTR keystream from a 16-byte key: deterministic, fast, stateful.

    Successive calls continue the stream, so two holders of the key stay in step as long
    as they draw the same amounts in the same order.
    """

    __slots__ = ("_enc", "_zeros")

    def __init__(self, key: bytes, nonce: bytes = bytes(16)) -> None:
        if len(key) != KEY_BYTES:
            raise ValidationError(f"PRG key must be {KEY_BYTES} bytes")
        if len(nonce) != 16:
            raise ValidationError("PRG nonce must be 16 bytes")
        self._enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
        self._zeros = b""  # reusable all-zero plaintext, grown on demand

    def __repr__(self) -> str:  # never show the key
        return "Prg(<key hidden>)"

    def bytes(self, n: int) -> bytes:
        """The next ``n`` bytes of the keystream."""
        if n < 0:
            raise ValidationError("cannot draw a negative number of bytes")
        return self._enc.update(bytes(n))

    def uint64(self, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        """Uniform elements of Z_2^64 in an array of ``shape``."""
        shp, size = _shape_size(shape)
        nbytes = 8 * size
        if len(self._zeros) < nbytes:
            self._zeros = bytes(max(nbytes, 2 * len(self._zeros)))
        # Encrypt zeros straight into a fresh array (two spare words: update_into wants
        # room for one more block than it writes).
        out = np.empty(size + 2, dtype=np.uint64)
        written = self._enc.update_into(memoryview(self._zeros)[:nbytes], out.view(np.uint8).data)
        if written != nbytes:  # pragma: no cover - CTR mode is a stream cipher
            raise ValidationError("AES-CTR keystream returned a short block")
        return out[:size].reshape(shp)

    def below(self, bound: int, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        """Uniform integers in ``[0, bound)`` (rejection sampling, no modulo bias)."""
        if not 0 < bound <= 2**64:
            raise ValidationError("bound must be in (0, 2^64]")
        shp, size = _shape_size(shape)
        if bound == 2**64:
            return self.uint64(shp)
        limit = np.uint64((2**64 // bound) * bound - 1)
        out = np.empty(size, dtype=np.uint64)
        filled = 0
        while filled < size:
            need = size - filled
            cand = self.uint64(need + need // 8 + 8)
            ok = cand[cand <= limit][:need]
            out[filled:filled + ok.size] = ok % np.uint64(bound)
            filled += ok.size
        return out.reshape(shp)

    def permutation(self, n: int) -> NDArray[np.int64]:
        """A uniform permutation of ``range(n)``, the same at every holder of the key.

        Each element gets a random 64-bit word whose low ``b = bitlen(n - 1)`` bits are
        replaced by its index; the words are sorted in place and the indices read back.
        The words are distinct, so every sort algorithm and every numpy build gives the
        same order (``argsort`` of equal keys does not), and a sort of plain words is about
        twice as fast as an ``argsort``. Elements whose random high parts tie would come
        out in index order, a bias of about ``n^2 / 2^(65 - b)``: each run of tied high parts
        is reordered by fresh words from the stream (:meth:`_untie`), so the permutation is
        exactly uniform whenever the keystream is.
        """
        if n < 0:
            raise ValidationError("a permutation needs a non-negative length")
        if n <= 1:
            return np.zeros(n, dtype=np.int64)
        b = (n - 1).bit_length()
        if b > 48:
            raise ValidationError("permutations are limited to 2^48 elements")
        low = np.uint64((1 << b) - 1)
        words = self.uint64(n)
        words &= ~low
        words |= np.arange(n, dtype=np.uint64)
        words.sort()
        order: NDArray[np.int64] = (words & low).astype(np.int64)
        words &= ~low  # the random high parts, in sorted order
        tied = words[1:] == words[:-1]
        if tied.any():
            self._untie(order, tied)
        return order

    def _untie(self, order: NDArray[np.int64], tied: NDArray[np.bool_]) -> None:
        """Shuffle each run of ``order`` whose sort keys tied (``tied[i]``: positions ``i``
        and ``i + 1`` tie) by fresh random words, in place; runs stay where they are."""
        member = np.zeros(order.size, dtype=bool)
        member[:-1] |= tied
        member[1:] |= tied
        pos = np.flatnonzero(member)
        # a run starts where a member does not tie with its predecessor
        starts = np.ones(pos.size, dtype=bool)
        starts[1:] = ~tied[pos[1:] - 1]
        run = np.cumsum(starts)
        while True:
            fresh = self.uint64(pos.size)
            by = np.lexsort((fresh, run))  # by run, then by fresh word (runs stay put)
            keyed = fresh[by]
            if not np.any((keyed[1:] == keyed[:-1]) & (run[1:] == run[:-1])):
                break  # no tie inside a run left (a retry has probability ~ n^2 / 2^65)
        order[pos] = order[pos][by]

    def integer_below(self, bound: int) -> int:
        """One uniform Python integer in ``[0, bound)`` of any size (e.g. mod a Paillier n)."""
        if bound <= 0:
            raise ValidationError("bound must be positive")
        nbytes = (bound.bit_length() + 7) // 8 + 8  # 64 extra bits: bias below 2^-64
        while True:
            v = int.from_bytes(self.bytes(nbytes), "little")
            lim = (256**nbytes // bound) * bound
            if v < lim:
                return v % bound


class Csprng:
    """The randomness a protocol takes as a parameter.

    ``Csprng()`` is seeded from the OS CSPRNG; ``Csprng(seed)`` with a seed of at least 16
    bytes is reproducible, for known-answer tests. Children derived by :meth:`derive` are
    independent streams (different AES-CTR nonces).
    """

    __slots__ = ("_counter", "_prg", "_seed")

    def __init__(self, seed: bytes | None = None) -> None:
        if seed is None:
            seed = new_key()
        if len(seed) < KEY_BYTES:
            raise ValidationError(f"a seed must have at least {KEY_BYTES * 8} bits")
        self._seed = bytes(seed[:KEY_BYTES])
        self._prg = Prg(self._seed)
        self._counter = 0

    def __repr__(self) -> str:
        return "Csprng(<seed hidden>)"

    def derive(self) -> Prg:
        """A new independent PRG stream from this generator."""
        self._counter += 1
        return Prg(self._seed, nonce=self._counter.to_bytes(8, "big") + b"\x00" * 8)

    def key(self) -> bytes:
        """A 128-bit key drawn from this generator."""
        return self._prg.bytes(KEY_BYTES)

    def bytes(self, n: int) -> bytes:
        return self._prg.bytes(n)

    def uint64(self, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        return self._prg.uint64(shape)

    def below(self, bound: int, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        return self._prg.below(bound, shape)

    def integer_below(self, bound: int) -> int:
        return self._prg.integer_below(bound)

    def state_repr(self) -> Any:  # pragma: no cover - debugging aid without secrets
        return {"draws": self._counter}
