"""Integrations with other packages, each optional."""
