"""Tests, grouped like the code they test."""
