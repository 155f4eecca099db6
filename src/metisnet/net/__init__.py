"""Network layer: node identities, the wire format, in-memory and TLS channels."""
