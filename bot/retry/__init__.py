"""Reruns of failed jobs asked for from Slack (the Retry button and ``/inductor retry``)."""
