"""Getting CI results in: payload parsing, signature checks, the ingest pipeline, replay and pollers."""
