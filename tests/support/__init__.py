"""Shared test support: synthetic trunk histories and process helpers."""
