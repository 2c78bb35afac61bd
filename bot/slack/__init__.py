"""Slack delivery and interaction: rendering, the outbox sender, the Bolt app and its listeners."""
