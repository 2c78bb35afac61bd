"""Getting CI results in: parsing, signatures, the ingest pipeline, replay and pollers."""
