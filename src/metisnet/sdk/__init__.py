"""Python SDK for requesters and data owners: signed calls to data nodes, running tasks,
SQL over a network's datasets (:class:`Client`)."""

from metisnet.node.requester import Requester, TaskResult
from metisnet.node.taskspec import TaskSpec
from metisnet.sdk.client import NodeClient, NodeRequestError
from metisnet.sdk.sql import Client, SqlTaskFailed, Table

__all__ = ["Client", "NodeClient", "NodeRequestError", "Requester", "SqlTaskFailed", "Table",
           "TaskResult", "TaskSpec"]
