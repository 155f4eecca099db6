"""Node services: data node, compute node, task runner, storage."""
