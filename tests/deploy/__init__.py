"""Deployment files under deploy/, checked by parsing them (no Docker engine, no Django)."""
