"""REST API of a node: app factory and request/response schemas."""
