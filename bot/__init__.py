"""Inductor CI alert bot."""
