"""The shared GitHub REST client: endpoint names and how answers map to errors."""

from __future__ import annotations

from bot.github.rest import logs_url


def test_logs_url() -> None:
    assert logs_url("pytorch/pytorch", 42) == (
        "https://api.github.com/repos/pytorch/pytorch/actions/jobs/42/logs"
    )
    local = logs_url("o/r", 7, api="http://127.0.0.1:9")
    assert local == "http://127.0.0.1:9/repos/o/r/actions/jobs/7/logs"
