"""A route's ``bisect`` table read and checked once: backend, templates, limits, authors.

Every problem is a ``BisectConfigError`` naming the route and key, so a typo fails at
start (and in the answer to a bisect request) instead of in the middle of a bisect.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from bot.domain.bisect_planner import BisectLimits
from bot.domain.durations import parse_duration
from bot.domain.route import Route

Backend = Literal["github", "local"]
BACKENDS: tuple[Backend, ...] = ("github", "local")
TEMPLATE_FIELDS = frozenset({"sha", "job", "key", "correlation"})
REVERT_FIELDS = frozenset({"sha", "short_sha", "pr", "job", "key", "repo"})
DEFAULT_K = 3  # GPU jobs take an hour: a few runs per round save whole hours
DEFAULT_TIMEOUT = timedelta(hours=1)
MAX_INPUTS = 10  # GitHub refuses a workflow_dispatch with more inputs

# route keys -> BisectLimits fields; the short names are the documented ones
_LIMIT_KEYS = {
    "max_runs": "max_runs",
    "max_k": "max_k",
    "max_concurrent": "max_concurrent_per_route",
    "max_concurrent_per_route": "max_concurrent_per_route",
    "confirm": "confirm_runs",
    "confirm_runs": "confirm_runs",
    "max_attempts": "max_attempts",
}
_OTHER_KEYS = {"backend", "k", "workflow", "ref", "inputs", "repo", "command", "timeout",
               "authors", "revert"}
NOT_CONFIGURED_HINT = 'set backend = "github" (or "local") under [routes.bisect]'


class BisectConfigError(ValueError):
    """A route's bisect settings cannot work; the message names the key and the problem."""


@dataclass(frozen=True, slots=True)
class BisectConfig:
    """How one route bisects.

    ``github``: dispatch ``workflow`` on ``ref`` with ``inputs`` (templates over
    ``{sha}``, ``{job}``, ``{key}``, ``{correlation}``). ``local``: run ``command`` in a
    worktree of ``repo`` at each commit, each run within ``timeout``.
    ``authors`` maps commit authors (GitHub logins or emails) to Slack user ids.
    ``revert`` is the suggested next step once a culprit is found (a template).
    """

    route: str
    backend: Backend
    k: int
    limits: BisectLimits
    workflow: str | None = None
    ref: str = "trunk/{sha}"
    inputs: Mapping[str, str] = field(default_factory=dict)
    repo: Path | None = None
    command: str | None = None
    timeout: timedelta = DEFAULT_TIMEOUT
    authors: Mapping[str, str] = field(default_factory=dict)
    revert: str | None = None

    @property
    def correlates(self) -> bool:
        """True when a dispatched run carries the probe's correlation id in an input."""
        return any("{correlation}" in value for value in self.inputs.values())


def bisect_config(route: Route) -> BisectConfig | None:
    """The route's bisect settings, or None when it has no ``backend`` (not configured)."""
    raw = dict(route.bisect)
    if not raw.get("backend"):
        if raw:
            raise BisectConfigError(_at(route, "backend", f"missing; {NOT_CONFIGURED_HINT}"))
        return None
    unknown = sorted(set(raw) - _OTHER_KEYS - set(_LIMIT_KEYS))
    if unknown:
        known = ", ".join(sorted(_OTHER_KEYS | set(_LIMIT_KEYS)))
        raise BisectConfigError(_at(route, unknown[0], f"unknown key; known keys: {known}"))
    backend = raw["backend"]
    if backend not in BACKENDS:
        raise BisectConfigError(_at(route, "backend", f"expected one of {list(BACKENDS)}, "
                                                      f"got {backend!r}"))
    limits = _limits(route, raw)
    k = _int(route, raw, "k", min(DEFAULT_K, limits.max_k))
    if not 1 <= k <= limits.max_k:
        raise BisectConfigError(_at(route, "k", f"must be between 1 and max_k "
                                                f"({limits.max_k}), got {k}"))
    common: dict[str, Any] = {
        "route": route.name, "backend": backend, "k": k, "limits": limits,
        "authors": _authors(route, raw.get("authors", {})),
        "revert": _template(route, raw, "revert", REVERT_FIELDS),
    }
    if backend == "github":
        return _github(route, raw, common)
    return _local(route, raw, common)


def _github(route: Route, raw: Mapping[str, Any], common: dict[str, Any]) -> BisectConfig:
    workflow = raw.get("workflow")
    if not isinstance(workflow, str) or not workflow.strip():
        raise BisectConfigError(_at(route, "workflow", "the github backend needs the workflow "
                                                       'file to dispatch, e.g. "trunk.yml"'))
    ref = _template(route, raw, "ref", TEMPLATE_FIELDS) or "trunk/{sha}"
    inputs_raw = raw.get("inputs", {})
    if not isinstance(inputs_raw, dict):
        raise BisectConfigError(_at(route, "inputs", "expected a table of input = template"))
    if len(inputs_raw) > MAX_INPUTS:
        raise BisectConfigError(_at(route, "inputs", f"GitHub allows at most {MAX_INPUTS} "
                                                     f"inputs, got {len(inputs_raw)}"))
    inputs = {}
    for name, value in inputs_raw.items():
        inputs[str(name)] = _check_template(route, f"inputs.{name}", value, TEMPLATE_FIELDS)
    config = BisectConfig(workflow=workflow.strip(), ref=ref, inputs=inputs, **common)
    if "{sha}" not in ref and not config.correlates:
        raise BisectConfigError(_at(route, "ref", "must contain {sha}, or an input must carry "
                                                  "{correlation}: otherwise the bot cannot tell "
                                                  "which run tests which commit"))
    return config


def _local(route: Route, raw: Mapping[str, Any], common: dict[str, Any]) -> BisectConfig:
    repo = raw.get("repo")
    if not isinstance(repo, str) or not repo.strip():
        raise BisectConfigError(_at(route, "repo", "the local backend needs the path of a git "
                                                   "checkout"))
    command = raw.get("command")
    if not isinstance(command, str) or not command.strip():
        raise BisectConfigError(_at(route, "command", "the local backend needs a shell command "
                                                      "(exit 0 pass, 125 untestable, else fail)"))
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, timedelta):
        if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
            timeout = timedelta(seconds=timeout)
        elif isinstance(timeout, str):
            try:
                timeout = parse_duration(timeout)
            except ValueError as exc:
                raise BisectConfigError(_at(route, "timeout", str(exc))) from None
        else:
            raise BisectConfigError(_at(route, "timeout", f"expected a duration such as \"1h\", "
                                                          f"got {timeout!r}"))
    return BisectConfig(repo=Path(repo).expanduser(), command=command, timeout=timeout,
                        **common)


def _limits(route: Route, raw: Mapping[str, Any]) -> BisectLimits:
    values: dict[str, int] = {}
    for key, target in _LIMIT_KEYS.items():
        if key in raw:
            if target in values:
                raise BisectConfigError(_at(route, key, "given twice under two names"))
            values[target] = _int(route, raw, key, 0)
    try:
        return BisectLimits(**values)
    except ValueError as exc:
        raise BisectConfigError(f"routes.{route.name}.bisect: {exc}") from None


def _int(route: Route, raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BisectConfigError(_at(route, key, f"expected an integer, got {value!r}"))
    return value


def _authors(route: Route, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BisectConfigError(_at(route, "authors", 'expected a table such as '
                                                      '{"github-login" = "U123ABC"}'))
    return {k.lower(): v for k, v in value.items()}


def _template(route: Route, raw: Mapping[str, Any], key: str,
              allowed: frozenset[str]) -> str | None:
    if key not in raw:
        return None
    return _check_template(route, key, raw[key], allowed)


def _check_template(route: Route, key: str, value: Any, allowed: frozenset[str]) -> str:
    if not isinstance(value, str):
        raise BisectConfigError(_at(route, key, f"expected a string, got {value!r}"))
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise BisectConfigError(_at(route, key, f"not a valid template: {exc}")) from None
    unknown = sorted(names - allowed)
    if unknown:
        raise BisectConfigError(_at(route, key, f"unknown placeholder {{{unknown[0]}}}; "
                                                f"known: {sorted(allowed)}"))
    return value


def _at(route: Route, key: str, problem: str) -> str:
    return f"routes.{route.name}.bisect.{key}: {problem}"
