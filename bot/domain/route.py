"""A route: which jobs of which repository and branch are watched, and how they alert."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from bot.domain.failure_classes import FailureRule


@dataclass(frozen=True, slots=True)
class Route:
    """One routing rule, loaded from the TOML file (or the built-in default).

    Only the matching fields matter to the domain; the Slack-facing fields ride along
    so every part of the bot reads one definition of the route.
    """

    name: str = "inductor"
    repo: str = "pytorch/pytorch"
    branch: str = "main"
    workflows: str = r"^inductor"
    exclude: str = r"unstable|rerun_disabled_tests|mem_leak_check"
    threshold: int = 3
    max_age: timedelta = timedelta(hours=24)
    team: str = "broken-inductor"
    priority: str = "P2"
    channel: str | None = None
    oncall: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    escalate_to: tuple[str, ...] = ()
    resolvers: tuple[str, ...] = ()  # who may resolve / bisect / retry; empty = everyone
    hud_url: str = ("https://hud.pytorch.org/hud/{repo}/{branch}/0?name_filter={job_filter}"
                    "&useRegexFilter=true")
    grafana_url: str | None = None
    runbook_url: str | None = None
    remind_after: timedelta = timedelta(minutes=30)
    remind_every: timedelta = timedelta(minutes=30)
    remind_limit: int = 3
    escalate_after: timedelta = timedelta(hours=2)
    extend_interval: timedelta = timedelta(minutes=30)
    bisect: dict[str, object] = field(default_factory=dict)
    # when the on-call is paged, per priority ("P0".."P3") or "default":
    # "open" | "escalation" | "never" (``bot.domain.paging``); empty: "open"
    notify: dict[str, str] = field(default_factory=dict)
    # evidence (EVIDENCE.md): where the route's code lives, its own failure rules (in front
    # of the shipped ones), tests known to be flaky, and whether infra failures alert
    code_area: tuple[str, ...] = ("torch/_inductor/**",)
    failure_rules: tuple[FailureRule, ...] = ()
    flaky_tests: tuple[str, ...] = ()
    infra_failures_alert: bool = False
    # one automatic rerun of a job's first failure (``auto_retry.py``), at most
    # ``auto_retry_budget`` reruns per rolling 24 h for the route
    auto_retry: bool = False
    auto_retry_budget: int = 10

    def watches_job(self, workflow: str, job_name: str) -> bool:
        """True when the workflow matches and the full job name is not excluded.

        The exclusion applies to ``"<workflow> / <job name>"`` with shard details, since
        markers such as ``unstable`` often sit inside the shard parentheses.
        """
        # re caches compiled patterns, so matching by pattern text costs no recompiles
        if not re.search(self.workflows, workflow):
            return False
        return not (self.exclude and re.search(self.exclude, f"{workflow} / {job_name}"))


def route_label(name: str) -> str:
    """Human name of a route's jobs, for titles: ``inductor`` -> ``Inductor``.

    A function of the name alone, so an alert whose route left the configuration is
    still titled the same way.
    """
    return name[:1].upper() + name[1:]
