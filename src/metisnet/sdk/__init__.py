"""Python SDK for requesters and data owners."""
