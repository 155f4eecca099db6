"""Python SDK for requesters and data owners: signed calls to data nodes."""

from metisnet.sdk.client import NodeClient, NodeRequestError

__all__ = ["NodeClient", "NodeRequestError"]
