"""Configuration and no-op tasks of the peers, imported by their worker processes."""
