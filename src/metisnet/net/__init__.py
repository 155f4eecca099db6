"""Network layer: node identities, the wire format, in-memory and TLS channels.

Modules, from the bottom up:

* :mod:`~metisnet.net.wire` -- length-prefixed frames, msgpack header, raw array bytes.
* :mod:`~metisnet.net.identity` -- secp256k1 node keys (the address is the node id),
  keystores, self-signed TLS certificates bound to the node key.
* :mod:`~metisnet.net.trust` -- trust stores (pinned certificate hashes) and peer
  directories; a JSON-file implementation now, the chain's registry later.
* :mod:`~metisnet.net.bulk` -- the bulk record layer: AES-256-GCM records for large
  payloads, under keys agreed (X25519 + HKDF) inside the pinned TLS 1.3 session.
* :mod:`~metisnet.net.tls` -- mutually pinned TLS 1.3 set-up over memory BIOs, with the
  bulk key exchange in its confirmation step.
* :mod:`~metisnet.net.channel` -- the ``Channel`` protocol and the in-memory transport.
* :mod:`~metisnet.net.link` -- one TLS link: TLS records and bulk records demultiplexed,
  frame decoding on receipt, whole-frame sends, a pool of large receive buffers.
* :mod:`~metisnet.net.endpoint` -- a node's TLS endpoint: one connection per peer pair,
  sessions multiplexed over it, each session a ``Channel``.
* :mod:`~metisnet.net.aio` -- an asyncio face for any channel (worker threads).

Nothing is imported here, so that importing one transport does not pull in the others.
"""
