"""Python SDK for requesters and data owners: signed calls to data nodes, running tasks."""

from metisnet.node.requester import Requester, TaskResult
from metisnet.node.taskspec import TaskSpec
from metisnet.sdk.client import NodeClient, NodeRequestError

__all__ = ["NodeClient", "NodeRequestError", "Requester", "TaskResult", "TaskSpec"]
