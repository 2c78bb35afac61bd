"""The bot's Slack identity is learnt in the background; requests never wait on ``auth.test``.

Through the real server and the fake Slack: a slow or failing ``auth.test`` neither delays
nor spoils a slash command, and shows in ``/healthz``; revoked tokens and events the bot
does not handle are answered 2xx; Socket Mode retries an unreachable Slack while the HTTP
endpoints keep serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.alerts import CHANNEL, broken_trunk, slack_settings
from tests.support.server import Clock, running_bot
from tests.support.slack_side import SECRET, SlackSide, fake_workspace
from tests.support.waiting import wait_until


def _side(running, fake) -> SlackSide:  # type: ignore[no-untyped-def]
    return SlackSide(running, fake, broken_trunk())


def test_first_command_is_answered_while_auth_test_is_still_pending(tmp_path: Path) -> None:
    with fake_workspace() as fake:
        fake.fail_next("auth.test", delay=6.0)  # Slack answers auth.test after 6 s
        with running_bot(tmp_path, Clock(), **slack_settings(fake.url, SECRET)) as running:
            side = _side(running, fake)
            fake.wait_for(lambda: fake.calls_to("auth.test"))
            reply = side.command("list")
            assert reply.http.status_code == 200
            # answered before auth.test was: the identity is still unknown after the ack
            assert running.bot.identity is not None and running.bot.identity.current is None
            assert "No open alerts" in reply.text()
            assert "reinstall" not in reply.text().lower()
            side.http.close()


def test_failing_auth_test_shows_in_healthz_never_to_the_person(tmp_path: Path) -> None:
    with fake_workspace() as fake:
        fake.fail_next("auth.test", error="invalid_auth", times=100)
        with running_bot(tmp_path, Clock(), **slack_settings(fake.url, SECRET)) as running:
            side = _side(running, fake)
            with running.client() as http:
                health = wait_until(
                    lambda: (r := http.get("/healthz")).status_code == 503 and r.json(),
                    message="/healthz to report the failing auth.test")
            assert "invalid_auth" in health["problems"]["slack_auth"]
            assert "SLACK_BOT_TOKEN" in health["problems"]["slack_auth"]
            reply = side.command("list")
            assert "No open alerts" in reply.text()
            assert "reinstall" not in reply.text().lower()
            side.http.close()


def test_identity_is_known_once_auth_test_answers(tmp_path: Path) -> None:
    with fake_workspace() as fake:
        fake.fail_next("auth.test", status=500)  # the first try fails; the retry answers
        with running_bot(tmp_path, Clock(), **slack_settings(fake.url, SECRET)) as running:
            identity = running.bot.identity
            assert identity is not None
            known = wait_until(lambda: identity.current, message="the bot identity")
            assert known.user_id == fake.bot_user_id and known.bot_id == fake.bot_id
            with running.client() as http:
                health = http.get("/healthz")
            assert "slack_auth" not in health.json()["problems"]


@pytest.mark.parametrize("event", [
    {"type": "tokens_revoked", "tokens": {"bot": ["UBOT"]}},
    {"type": "app_uninstalled"},
])
def test_revoked_token_gets_2xx_and_healthz_names_it(tmp_path: Path,
                                                     event: dict[str, object]) -> None:
    with fake_workspace() as fake, \
            running_bot(tmp_path, Clock(), **slack_settings(fake.url, SECRET)) as running:
        side = _side(running, fake)
        wait_until(lambda: running.bot.identity and running.bot.identity.current,
                   message="the bot identity")
        answer = side.event(event, event_id=f"Ev{event['type']}")
        assert 200 <= answer.status_code < 300, answer.text
        with running.client() as http:
            health = http.get("/healthz")
        assert health.status_code == 503
        assert "reinstall" in health.json()["problems"]["slack_auth"]
        side.http.close()


def test_events_the_bot_does_not_handle_get_2xx(tmp_path: Path) -> None:
    with fake_workspace() as fake, \
            running_bot(tmp_path, Clock(), **slack_settings(fake.url, SECRET)) as running:
        side = _side(running, fake)
        for n, kind in enumerate(["member_joined_channel", "app_mention", "team_join"]):
            answer = side.event({"type": kind, "user": "U1", "channel": CHANNEL}, f"Ev{n}")
            assert answer.status_code == 200, (kind, answer.status_code, answer.text)
        side.http.close()


def test_start_logs_no_bolt_token_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` runs with SLACK_BOT_TOKEN in its environment, which Bolt reads by itself."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    with caplog.at_level(logging.DEBUG), fake_workspace() as fake, \
            running_bot(tmp_path, Clock(), **slack_settings(fake.url, SECRET)):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in warnings if "token" in w and ("unused" in w or "ignored" in w)]


def test_socket_mode_keeps_retrying_while_http_serves(tmp_path: Path) -> None:
    """Slack refuses ``apps.connections.open``: the bot stays up, says why, and retries."""
    with fake_workspace() as fake:
        fake.fail_next("apps.connections.open", error="invalid_auth", times=100)
        settings = {**slack_settings(fake.url, SECRET), "slack_app_token": "xapp-test"}
        with running_bot(tmp_path, Clock(), **settings) as running, running.client() as http:
            health = wait_until(
                lambda: (r := http.get("/healthz")).status_code == 503
                and "cannot reach" in r.json()["problems"].get("slack_socket", "") and r.json(),
                message="/healthz to name Socket Mode")
            assert "cannot reach Slack" in health["problems"]["slack_socket"]
            assert health["slack"] == "socket mode (not connected)"
            fake.wait_for(lambda: len(fake.calls_to("apps.connections.open")) >= 2, timeout=10)
