"""Stand-ins for external services (Slack, ...) that tests run for real on 127.0.0.1."""
