"""Settings from environment variables (12-factor) and routing rules from a TOML file.

Every setting is documented in README.md; an invalid value fails at start with a
message naming the variable or key and what is wrong with it.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.domain.durations import parse_duration
from bot.domain.failure_classes import RULE_KINDS, FailureClass, FailureRule
from bot.domain.paging import POLICIES
from bot.domain.route import Route


class ConfigError(ValueError):
    """A setting or routing rule that cannot work; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    database_path: str = "./inductor-bot.db"
    bot_config: str | None = None
    host: str = "0.0.0.0"
    port: int = 3000
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_timeout: float = 10.0  # seconds per Web API call
    slack_channel: str | None = None
    github_webhook_secret: str | None = None
    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    github_poll_interval: int = 120
    github_backfill_commits: int = 50
    github_log_interval: int = 15  # seconds between evidence reader ticks (logs, files)
    github_log_tail_bytes: int = 1 << 20  # the end of each failed job's log that is read
    hud_url: str | None = None
    hud_token: str | None = None
    hud_poll_interval: int = 120
    hud_per_page: int = 50
    hud_backfill_commits: int = 50
    grafana_webhook_token: str | None = None
    grafana_webhook_secret: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    max_pending_body_bytes: int = 64 * 1024 * 1024  # all unauthenticated bodies being read
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    body_timeout: float = 30.0  # seconds for a whole request body to arrive
    max_connections: int | None = None  # None: half the process's file descriptor limit
    webhook_store_timeout: float = 8.0  # seconds before a webhook that waits to be stored gets 503
    shutdown_timeout: float = 20.0  # seconds SIGTERM waits for in-flight work
    disk_free_min_bytes: int = 64 * 1024 * 1024  # /healthz 503 below this free space
    db_lock_alarm: float = 30.0  # /healthz 503 when the write lock is unobtainable this long
    sender_stuck_after: float = 120.0  # /healthz 503 when the sender makes no progress this long
    sender_lease_ttl: float = 30.0  # seconds a sender's lease lasts unless renewed
    retention_deliveries_days: int = 14  # webhook ledger rows older than this are deleted
    retention_commits: int = 5000  # results and cells further behind the head are deleted
    retention_resolved_days: int = 90  # timelines of alerts resolved longer ago are trimmed
    scheduler_enabled: bool = True
    digest_hour_utc: int | None = None  # daily digest per channel at this UTC hour; None: off
    routes: tuple[Route, ...] = field(default_factory=tuple)


SECRET_SETTINGS = ("slack_bot_token", "slack_signing_secret", "slack_app_token",
                   "github_webhook_secret", "github_token", "hud_token", "grafana_webhook_token",
                   "grafana_webhook_secret")


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every configured secret, for cutting out of text the bot passes on (probe output)."""
    return tuple(v for v in (getattr(settings, name) for name in SECRET_SETTINGS) if v)


_INT_SETTINGS = {"port", "github_poll_interval", "github_backfill_commits", "github_log_interval",
                 "github_log_tail_bytes", "hud_poll_interval",
                 "hud_per_page", "hud_backfill_commits", "max_body_bytes", "digest_hour_utc",
                 "max_pending_body_bytes", "max_connections", "disk_free_min_bytes",
                 "retention_deliveries_days", "retention_commits", "retention_resolved_days"}
_BOOL_SETTINGS = {"scheduler_enabled"}
_FLOAT_SETTINGS = {"slack_timeout", "header_timeout", "body_timeout", "webhook_store_timeout",
                   "shutdown_timeout", "db_lock_alarm", "sender_stuck_after",
                   "sender_lease_ttl"}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from the environment (upper-case field names) and load routes."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "routes":
            continue
        raw = env.get(f.name.upper())
        if raw is None or not raw.strip():  # empty or blank: as if unset
            continue
        if f.name in _INT_SETTINGS:
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ConfigError(f"{f.name.upper()}: expected an integer, got {raw!r}") from None
        elif f.name in _FLOAT_SETTINGS:
            try:
                values[f.name] = float(raw)
            except ValueError:
                raise ConfigError(f"{f.name.upper()}: expected a number, got {raw!r}") from None
            if not values[f.name] > 0:
                raise ConfigError(f"{f.name.upper()}: expected a positive number of seconds, "
                                  f"got {raw!r}")
        elif f.name in _BOOL_SETTINGS:
            values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            values[f.name] = raw
    settings = Settings(**values)
    check_slack(settings, env)
    if settings.digest_hour_utc is not None and not 0 <= settings.digest_hour_utc <= 23:
        raise ConfigError(f"DIGEST_HOUR_UTC: expected an hour from 0 to 23, "
                          f"got {settings.digest_hour_utc}")
    routes = load_routes(settings.bot_config, default_channel=settings.slack_channel)
    return Settings(**{**values, "routes": routes})


_SIGNING_SECRET_HINT = "the Signing Secret on the Slack app's Basic Information page"


def check_slack(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """The Slack settings that only work together: a token needs a way to hear Slack.

    ``env`` tells an empty variable from a missing one, for the message.
    """
    env = {} if env is None else env
    if settings.slack_app_token and not settings.slack_bot_token:
        raise ConfigError("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: Socket Mode "
                          "needs both (SLACK_BOT_TOKEN=xoxb-... from OAuth & Permissions), "
                          "or unset SLACK_APP_TOKEN to run in console mode")
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN: expected an app-level token starting with xapp- "
                          "(Basic Information > App-Level Tokens, scope connections:write)")
    if not settings.slack_bot_token or settings.slack_app_token:
        return
    if settings.slack_signing_secret is None:
        empty = "SLACK_SIGNING_SECRET" in env and not env["SLACK_SIGNING_SECRET"].strip()
        raise ConfigError(
            f"SLACK_SIGNING_SECRET is {'empty' if empty else 'not set'} but SLACK_BOT_TOKEN is: "
            f"set it to {_SIGNING_SECRET_HINT} (or set SLACK_APP_TOKEN for Socket Mode, or "
            "unset SLACK_BOT_TOKEN to run in console mode)")


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(env: Mapping[str, str] | None = None) -> int:
    """``LOG_LEVEL`` as a logging level (default INFO); a name logging does not know fails."""
    env = os.environ if env is None else env
    raw = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if raw == "WARN":
        raw = "WARNING"
    if raw not in _LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL: {raw.lower()!r} is not a log level; use one of "
                          f"{', '.join(_LOG_LEVELS)} (or unset it for INFO)")
    return int(getattr(logging, raw))


# --- routes ---------------------------------------------------------------------------------

_ROUTE_FIELDS = {f.name: f for f in fields(Route)}
_DURATION_KEYS = {"max_age", "remind_after", "remind_every", "escalate_after", "extend_interval"}
_LIST_KEYS = {"oncall", "owners", "escalate_to", "resolvers"}
_INT_KEYS = {"threshold", "remind_limit", "auto_retry_budget"}
_REGEX_KEYS = {"workflows", "exclude"}
_STRING_LIST_KEYS = {"code_area", "flaky_tests"}
_BOOL_KEYS = {"infra_failures_alert", "auto_retry"}
_PRIORITY = re.compile(r"^P[0-3]$")
_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")


def load_routes(path: str | None, default_channel: str | None = None) -> tuple[Route, ...]:
    """Routes from the TOML file, or the one built-in Inductor route when there is none."""
    if not path:
        return (Route(channel=default_channel),)
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"BOT_CONFIG: file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"BOT_CONFIG: {path} is not valid TOML: {exc}") from None
    return parse_routes(data, default_channel=default_channel)


def parse_routes(data: Mapping[str, Any], default_channel: str | None = None) -> tuple[Route, ...]:
    unknown = set(data) - {"defaults", "routes"}
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected [defaults] "
                          "and [[routes]]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError("defaults: expected a table")
    raw_routes = data.get("routes", [{}])
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ConfigError("routes: expected at least one [[routes]] table")
    routes: list[Route] = []
    for index, raw in enumerate(raw_routes):
        if not isinstance(raw, dict):
            raise ConfigError(f"routes[{index}]: expected a table")
        merged = {**defaults, **raw}
        routes.append(_route(merged, f"routes[{index}]", default_channel))
    names = [r.name for r in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"routes: names must be unique, {duplicates} repeat")
    return tuple(routes)


def _route(raw: Mapping[str, Any], where: str, default_channel: str | None) -> Route:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key not in _ROUTE_FIELDS:
            raise ConfigError(f"{at}: unknown key; known keys: {', '.join(sorted(_ROUTE_FIELDS))}")
        if key in _DURATION_KEYS:
            values[key] = _duration(value, at)
        elif key in _LIST_KEYS:
            values[key] = _slack_ids(value, at)
        elif key in _INT_KEYS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{at}: expected a positive integer, got {value!r}")
            values[key] = value
        elif key == "notify":
            values[key] = _notify(value, at)
        elif key == "bisect":
            if not isinstance(value, dict):
                raise ConfigError(f"{at}: expected a table")
            values[key] = dict(value)
        elif key in _STRING_LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{at}: expected a list of strings, got {value!r}")
            if key == "flaky_tests":
                for pattern in value:
                    _regex(pattern, at)
            values[key] = tuple(value)
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(f"{at}: expected true or false, got {value!r}")
            values[key] = value
        elif key == "failure_rules":
            values[key] = _failure_rules(value, at)
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{at}: expected a string, got {value!r}")
            values[key] = value
    for key in _REGEX_KEYS & values.keys():
        try:
            re.compile(values[key])
        except re.error as exc:
            raise ConfigError(f"{where}.{key}: invalid regular expression: {exc}") from None
    priority = values.get("priority")
    if priority is not None:
        if not _PRIORITY.match(priority.upper()):
            raise ConfigError(f"{where}.priority: expected P0, P1, P2 or P3, got {priority!r}")
        values["priority"] = priority.upper()
    if "repo" in values and values["repo"].count("/") != 1:
        raise ConfigError(f"{where}.repo: expected owner/name, got {values['repo']!r}")
    values.setdefault("channel", default_channel)
    return Route(**values)


def _notify(value: Any, at: str) -> dict[str, str]:
    """``notify = "open"`` or ``notify = { default = "open", P3 = "never" }``."""
    table = {"default": value} if isinstance(value, str) else value
    if not isinstance(table, dict):
        raise ConfigError(f"{at}: expected one of {', '.join(POLICIES)}, or a table of them "
                          "by priority, e.g. {{ default = \"open\", P3 = \"never\" }}")
    for key, policy in table.items():
        if key not in ("default", "P0", "P1", "P2", "P3"):
            raise ConfigError(f"{at}.{key}: expected default, P0, P1, P2 or P3 as the key")
        if policy not in POLICIES:
            raise ConfigError(f"{at}.{key}: expected one of {', '.join(POLICIES)}, "
                              f"got {policy!r}")
    return dict(table)


def _regex(pattern: str, at: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{at}: invalid regular expression {pattern!r}: {exc}") from None


def _failure_rules(value: Any, at: str) -> tuple[FailureRule, ...]:
    """``[{name = "...", pattern = "...", class = "infra"}, ...]``: rules in front of the
    shipped ones (``bot/domain/EVIDENCE.md``); ``class`` defaults to infra."""
    if not isinstance(value, list):
        raise ConfigError(f"{at}: expected a list of tables "
                          "({name = \"...\", pattern = \"...\", class = \"infra\"})")
    kinds = ", ".join(k.value for k in RULE_KINDS)
    rules: list[FailureRule] = []
    for index, raw in enumerate(value):
        where = f"{at}[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table with name, pattern and class")
        unknown = sorted(set(raw) - {"name", "pattern", "class"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: name, pattern, class")
        name, pattern = raw.get("name"), raw.get("pattern")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name: expected a non-empty string")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{where}.pattern: expected a regular expression")
        _regex(pattern, f"{where}.pattern")
        kind = raw.get("class", "infra")
        if kind not in {k.value for k in RULE_KINDS}:
            raise ConfigError(f"{where}.class: expected one of {kinds}, got {kind!r}")
        rules.append(FailureRule(name.strip(), pattern, FailureClass(kind)))
    return tuple(rules)


def _duration(value: Any, at: str) -> timedelta:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{at}: {exc}") from None
    raise ConfigError(f"{at}: expected a duration such as \"30m\" or a number of seconds, "
                      f"got {value!r}")


def _slack_ids(value: Any, at: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{at}: expected a list of Slack user or user-group ids")
    for item in items:
        if not _SLACK_ID.match(item):
            raise ConfigError(f"{at}: {item!r} is not a Slack user (U.../W...) or "
                              "user-group (S...) id")
    return tuple(items)
