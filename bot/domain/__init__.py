"""Pure domain rules: job keys, cells, streaks, alerts, regression ranges, bisect planning.

Nothing in this package performs I/O or imports from ingest, store or slack.
"""
