"""CLI commands that run the bot itself: serve, migrate and demo.

The other commands live with what they drive (``bot.ingest.replay``, ``bot.bisect.cli``);
``bot.__main__`` lists them all."""
