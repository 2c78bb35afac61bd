"""Getting CI results in: payload parsing, the ingest pipeline, replay and pollers."""
