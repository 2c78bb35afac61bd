"""CLI commands that run the bot: serve and migrate."""
