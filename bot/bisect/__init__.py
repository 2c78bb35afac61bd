"""Bisect execution: backends that run probes and the command line front end."""
