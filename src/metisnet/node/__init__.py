"""Node services: data node, compute node, task runner, storage.

The data node (no networking of its own; :mod:`metisnet.api` serves it over REST):

* :mod:`~metisnet.node.datanode` -- :class:`DataNode`: add / host datasets, policies,
  revoke, policy-checked data requests (tasks), ``read_columns`` for a task runner, audit;
* :mod:`~metisnet.node.config` -- :class:`DataNodeConfig`, the ``[node]`` table of a TOML;
* :mod:`~metisnet.node.storage` -- SQLite (WAL) store: datasets, tasks, audit, nonces;
* :mod:`~metisnet.node.policy` -- :class:`Policy`, ``evaluate`` / ``check`` -> ``Decision``;
* :mod:`~metisnet.node.sealed` -- chunked AES-256-GCM files at rest;
* :mod:`~metisnet.node.envelope` -- hosted uploads: ECIES (secp256k1) envelopes;
* :mod:`~metisnet.node.ingest`, :mod:`~metisnet.node.schema` -- CSV / Parquet to Parquet;
* :mod:`~metisnet.node.commitment` -- the salted Merkle commitment over a dataset;
* :mod:`~metisnet.node.registrar` -- :class:`DatasetRegistrar`: chain or local registry;
* :mod:`~metisnet.node.auth` -- signed requests (EIP-191 over a canonical request);
* :mod:`~metisnet.node.identity` -- node and owner keys, the master key.

Submodules are imported explicitly (``from metisnet.node.datanode import DataNode``); this
package imports nothing, so that using one part does not load pyarrow, web3 and the rest.
"""
