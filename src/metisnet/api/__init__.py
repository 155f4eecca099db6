"""REST API of a node: app factory and request/response schemas.

The data node's API (:func:`metisnet.api.app.create_app`; OpenAPI at ``/openapi.json``):

=======  ==============================  ============================================
GET      /health, /node                  liveness; node id and public key (unsigned)
POST     /datasets?name=&format=&schema= operators: plaintext CSV/Parquet body
POST     /datasets/hosted?name=&format=  owners: body encrypted to the node's key
GET      /datasets, /datasets/{id}       metadata, schema, commitment, policy
GET/PUT  /datasets/{id}/policy           read; replace (owner only)
POST     /datasets/{id}/revoke           owner only; key and file destroyed
POST     /tasks; GET /tasks[/{id}]       policy-checked data requests (403 names the rule)
GET      /audit?after=&limit=            the append-only audit log
=======  ==============================  ============================================

Every other route needs the ``x-metis-*`` signature headers of
:mod:`metisnet.node.auth`. Errors are ``{"error", "message", "rule"}`` JSON with a 4xx
status (401 signature, 403 policy, 404 unknown id, 413 too large, 429 busy, 400/422 bad
input).
:func:`metisnet.api.server.serve_data_node` runs it as a service.
"""
