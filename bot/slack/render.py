"""Alert rendering for Slack: the parent message (text + blocks), thread replies, list lines.

Pure functions of the view dataclasses; every piece of CI text is shown literally
(``mrkdwn.literal``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bot.domain.alert_ids import short_id
from bot.domain.auto_retry import AUTOMATIC
from bot.domain.durations import format_duration
from bot.domain.route import route_label
from bot.domain.triage import raised_priority
from bot.slack.evidence_text import (
    STATE_WORDS,
    RunGroup,
    code_groups,
    has_evidence,
    infra_groups,
    reason_text,
    run_label,
    verdict_words,
)
from bot.slack.mrkdwn import (
    code_line,
    date,
    link,
    literal,
    mention,
    plain,
    safe_url,
    truncate,
)
from bot.slack.view import AlertView, CommitView, EventView, FailedRunView, JobView

Block = dict[str, Any]

# Slack's Block Kit limits, and the smaller budgets that keep a message readable.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_VALUE = 2000
MAX_ID = 255
MAX_REPLY_TEXT = 3900
JOBS_SHOWN = 10
SUSPECTS_SHOWN = 5
ERRORS_SHOWN = 8  # signature groups listed under "What failed"
RUNS_NAMED = 6  # failed runs named on one error line
VERDICT_CHARS = 400
EXTERNAL_SHOWN = 3
FAILURE_LINE_CHARS = 200
KEY_CHARS = 150
TITLE_CHARS = 200
COMMIT_TITLE_CHARS = 100
NAME_CHARS = 60
REASON_CHARS = 500
PROBES_SHOWN = 16
DETAIL_CHARS = 150
REVERT_CHARS = 300

SNOOZE_CHOICES: tuple[tuple[str, str], ...] = (
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("2h", "2 hours"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("green", "Until green"),
)

# External-alert link keys -> labels on the links line, in display order.
_EXTERNAL_LINK_LABELS = {
    "generator": "Grafana alert",
    "dashboard": "Grafana dashboard",
    "panel": "Grafana panel",
    "silence": "Silence",
    "runbook": "Runbook",
}
_TRUNK_BRANCHES = ("main", "master")


# ---------------------------------------------------------------- shared pieces


def escalation_showing(view: AlertView) -> bool:
    """The escalation marker shows only while nobody has taken the alert.

    Once someone acknowledges, is assigned or bisects (or it resolves), the raised
    priority has done its job; leaving ``[P1↑]`` up would keep paging the reader's eye.
    """
    return (view.escalated and view.state != "resolved" and not view.acked_by
            and not view.assignee and view.state != "bisecting")


def shown_priority(view: AlertView) -> str:
    """The priority people see: one step more urgent while escalated (P2 -> P1, P0 stays)."""
    return raised_priority(view.priority) if escalation_showing(view) else view.priority


def alert_title(view: AlertView) -> str:
    """The raw (unescaped) one-line title, e.g. ``[P2] broken-inductor: 2 Inductor jobs ...``.

    Counts only jobs still failing and quotes their shortest streak ("3+"), which is
    the claim every listed job satisfies; once all recovered it says what was.
    """
    priority = shown_priority(view)
    if priority != view.priority:
        priority += "↑"
    failing = [job for job in view.jobs if not job.recovered]
    label = route_label(view.route)
    where = _branch_label(view.branch)
    if failing:
        noun = "job" if len(failing) == 1 else "jobs"
        streak = min(job.streak for job in failing)
        what = f"{len(failing)} {label} {noun} failing for {streak}+ commits on {where}"
    elif view.jobs:
        noun = "job" if len(view.jobs) == 1 else "jobs"
        streak = max(job.streak for job in view.jobs)
        what = f"{len(view.jobs)} {label} {noun} failed for up to {streak} commits on {where}"
    elif view.title:
        what = view.title
    elif view.external:
        what = view.external[0].title
    else:
        what = f"alert {view.short_id}"
    return truncate(plain(f"[{priority}] {view.team}: {what}"), TITLE_CHARS)


def _branch_label(branch: str) -> str:
    """PyTorch people say "trunk" for main; other branches keep their name."""
    return "trunk" if branch in _TRUNK_BRANCHES else branch


def _commit_link(view: AlertView, sha: str) -> str:
    url = f"{view.github_url.rstrip('/')}/{view.repo}/commit/{quote(sha, safe='')}"
    return link(url, sha[:7])


def _pr_link(view: AlertView, number: int) -> str:
    return link(f"{view.github_url.rstrip('/')}/{view.repo}/pull/{number}", f"#{number}")


def _user(user_id: str) -> str:
    """A user reference in the parent message, where a status like "Acknowledged by" is asked for.

    Parent messages change by ``chat.update``, which notifies nobody.
    """
    return mention(user_id)


def _text(text: str, limit: int) -> str:
    """Untrusted text made safe for mrkdwn: one line, shown literally, at most ``limit`` chars."""
    return truncate(literal(plain(text)), limit)


def _elapsed(start: datetime, end: datetime) -> str:
    return format_duration(_utc(end) - _utc(start))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ----------------------------------------------------------------- parent message


def render_parent(view: AlertView) -> tuple[str, list[Block]]:
    """The alert's one channel message: notification text and blocks, within Slack's limits.

    The fallback text is what notifications and screen readers show, so it is the
    escaped title and nothing else: no mentions, no status noise.
    """
    head = f"*{literal(alert_title(view))}*\n{_status_line(view)}"
    people = _people_line(view)
    blocks: list[Block] = [_section(f"{head}\n{people}" if people else head)]
    blocks += _job_blocks(view)
    blocks += _failure_blocks(view)
    blocks += _range_blocks(view)
    blocks += _external_blocks(view)
    links = _links_line(view)
    if links:
        blocks.append(_context(links))
    tail: list[Block] = []
    if view.state != "resolved":
        tail.append(_actions(view))
    tail.append(_context(_footer(view)))
    room = MAX_BLOCKS - len(tail)
    if len(blocks) > room:
        blocks = blocks[: room - 1] + [_context("_Some details were left out to fit Slack._")]
    return literal(alert_title(view)), blocks + tail


def _status_line(view: AlertView) -> str:
    """State, owner and snooze together, whichever of them is the headline.

    The state word leads; the owner (assignee, else who acknowledged) and a snooze
    follow whenever they are set, so snoozing never hides who owns the alert. The
    escalation marker follows only while nobody has taken the alert.
    """
    state = view.state
    if state == "resolved":
        line = ":white_check_mark: *Resolved*"
        if view.resolved_at is not None:
            line += f" after {_elapsed(view.opened_at, view.resolved_at)}"
        if view.resolved_by:
            line += f" by {_user(view.resolved_by)}"
        if view.resolved_at_sha:
            line += f", jobs green again at {_commit_link(view, view.resolved_at_sha)}"
        return line
    heads = {
        "open": ":red_circle: *Open*",
        "acknowledged": ":eyes: *Acknowledged*",
        "assigned": ":bust_in_silhouette: *Assigned*",
        "snoozed": ":zzz: *Snoozed*",
        "bisecting": ":mag: *Bisecting*",
    }
    parts = [heads.get(state, ":red_circle: *Open*")]
    if state == "bisecting" and view.bisect_status:
        parts[0] += f": {_text(view.bisect_status, 200)}"
    snooze = _snooze_words(view)
    if state == "snoozed" and snooze:
        parts[0] += f" {snooze}"
    owners: list[str] = []
    if view.assignee:
        owners.append(f"assigned to {_user(view.assignee)}")
    if view.acked_by and view.acked_by != view.assignee:
        owners.append(f"acknowledged by {_user(view.acked_by)}")
    if state in ("acknowledged", "assigned") and owners:
        # the head already names the state: "*Assigned* to @carol", not "*Assigned* · assigned"
        parts[0] += " " + owners.pop(0).split(" ", 1)[1]
    parts += owners or ([] if state in ("acknowledged", "assigned") else ["nobody on it yet"])
    if state != "snoozed" and snooze:
        parts.append(f"snoozed {snooze}")
    if escalation_showing(view):
        parts.append(f":arrow_up: escalated from {_text(view.priority, 10)}")
    return " · ".join(parts)


def _people_line(view: AlertView) -> str:
    """Who is on call for the route and who owns it, e.g. ``On call: @inductor-oncall``."""
    parts = []
    if view.oncall:
        parts.append("On call: " + ", ".join(_person(view, i) for i in view.oncall[:10]))
    if view.owners:
        parts.append("Owners: " + ", ".join(_person(view, i) for i in view.owners[:10]))
    return " · ".join(parts)


def _person(view: AlertView, slack_id: str) -> str:
    """By name where the view carries names (the channel message: no ping), else a mention."""
    name = view.names.get(slack_id)
    return f"@{_text(name, NAME_CHARS)}" if name else mention(slack_id)


def _snooze_words(view: AlertView) -> str:
    """``until green (at most until …)``, ``until <date>``, or "" when not snoozed."""
    if view.snooze_reason:
        text = _text(view.snooze_reason, 100)
        if view.snoozed_until is not None:
            text += f" (at most until {date(view.snoozed_until)})"
        return text
    if view.snoozed_until is not None:
        return f"until {date(view.snoozed_until)}"
    return ""


def _job_blocks(view: AlertView) -> list[Block]:
    """Failing jobs first, then recovered ones; ten at most, the rest counted.

    Jobs of one workflow and build (``inductor / cuda12.8-py3.10-gcc9-sm86``) are listed
    under that prefix once, so each line shows only what differs.
    """
    if not view.jobs:
        return []
    ordered = sorted(view.jobs, key=lambda job: job.recovered)
    shown = ordered[:JOBS_SHOWN]
    lines: list[str] = []
    for prefix, jobs in _by_prefix(shown):
        if prefix:
            lines.append(f"*{_text(prefix, KEY_CHARS)}*")
            lines += [_job_line(view, job, job.key[len(prefix) + len(_SEP):]) for job in jobs]
        else:
            lines += [_job_line(view, job, job.key) for job in jobs]
    hidden = ordered[JOBS_SHOWN:]
    if hidden:
        recovered = sum(job.recovered for job in hidden)
        detail = f" ({recovered} recovered)" if recovered else ""
        lines.append(f"_+{len(hidden)} more jobs{detail}_")
    return _sections("*Jobs*", lines)


_SEP = " / "


def _by_prefix(jobs: list[JobView]) -> list[tuple[str, list[JobView]]]:
    """Jobs grouped by everything before their last `` / `` (in first-seen order).

    A prefix shared by two or more jobs becomes a heading; a job alone keeps its full
    key (heading "" ), so nothing is ever shown without its workflow.
    """
    groups: dict[str, list[JobView]] = {}
    for job in jobs:
        prefix = job.key.rsplit(_SEP, 1)[0] if _SEP in job.key else ""
        groups.setdefault(prefix, []).append(job)
    out: list[tuple[str, list[JobView]]] = []
    for prefix, members in groups.items():
        if prefix and len(members) > 1:
            out.append((prefix, members))
        elif out and out[-1][0] == "":
            out[-1][1].extend(members)
        else:
            out.append(("", members))
    return out


def _job_line(view: AlertView, job: JobView, name: str) -> str:
    key = _text(name, KEY_CHARS)
    if job.recovered:
        return f"• :white_check_mark: ~{key}~ recovered{_flaky_note(job)}"
    commits = "commit" if job.streak == 1 else "commits"
    line = f"• :x: *{key}* failing for {job.streak} {commits}"
    first_red = view.first_red.sha if view.first_red else None
    if job.first_failing_sha and job.first_failing_sha != first_red:
        line += f" since {_commit_link(view, job.first_failing_sha)}"  # else the range says it
    log = next((url for url in (job.log_url, job.html_url) if safe_url(url)), None)
    if log:
        line += f" · {link(log, 'log')}"
    line += _flaky_note(job)
    if not has_evidence(view.failed_runs):  # else "What failed" shows each run's line
        failure = code_line(job.failure_line or "", FAILURE_LINE_CHARS)
        if failure:
            line += f"\n      {failure}"
    verdict = verdict_words(job.verdict, job.evidence, job.against)
    if verdict:
        line += f"\n      {_text(verdict, VERDICT_CHARS)}"
    return line


def _failure_blocks(view: AlertView) -> list[Block]:
    """What the failed runs' logs say at each job's newest failing commit: runs failing the
    same way on one line ("same error in 3 jobs"), infrastructure failures apart."""
    if not has_evidence(view.failed_runs):
        return []
    blocks: list[Block] = []
    groups = code_groups(view.failed_runs)
    if groups:
        lines = [_group_line(group) for group in groups[:ERRORS_SHOWN]]
        if len(groups) > ERRORS_SHOWN:
            lines.append(f"_+{len(groups) - ERRORS_SHOWN} more errors_")
        blocks += _sections("*What failed* (newest failing commit)", lines)
    infra = infra_groups(view.failed_runs)
    if infra:
        lines = [f"• {_text(group.line or 'infrastructure', 100)} — {_runs(group)}"
                 for group in infra[:ERRORS_SHOWN]]
        blocks += _sections("*Infrastructure failures* (not a regression: no streak counted "
                            "by default)", lines)
    if view.retries:
        blocks.append(_context(_retries_line(view)))
    return blocks


_RETRY_WORDS = {
    "planned": ":hourglass: asked", "uncertain": ":hourglass: asked",
    "requested": ":hourglass: running", "refused": ":no_entry: not started",
    "lost": ":grey_question: no result",
}
_RETRY_OUTCOMES = {"passed": ":white_check_mark: passed", "failed": ":x: failed again",
                   "cancelled": ":heavy_minus_sign: cancelled"}


def _retries_line(view: AlertView) -> str:
    """``Retried (asked by @alice): huggingface 2/3 :x: failed again, timm 1/1 …``"""
    askers = list(dict.fromkeys(r.requested_by for r in view.retries))
    who = ", ".join("the bot, automatically" if a == AUTOMATIC else
                    _user(a) if a[:1] in "UW" else _text(a, 30) for a in askers[:3])
    parts = []
    for retry in view.retries[:RUNS_NAMED * 2]:
        label = run_label(FailedRunView(key="", job_name=retry.job_name))
        status = (_RETRY_OUTCOMES.get(retry.outcome or "", retry.outcome or "")
                  if retry.state == "done" else _RETRY_WORDS.get(retry.state, retry.state))
        detail = (f" ({_text(retry.detail, 100)})"
                  if retry.state == "refused" and retry.detail else "")
        parts.append(f"{literal(label)} {status}{detail}")
    more = len(view.retries) - len(parts)
    tail = f" and {more} more" if more > 0 else ""
    return f":repeat: *Retried* (asked by {who}): " + ", ".join(parts) + tail


def _group_line(group: RunGroup) -> str:
    if group.line is None:
        what = f"_{STATE_WORDS.get(group.state, 'no error line')}_"
    else:
        what = code_line(group.line, FAILURE_LINE_CHARS) or "_no error line_"
    same = f" — same error in {group.size} jobs:" if group.size > 1 else " —"
    return f"• {what}{same} {_runs(group)}"


def _runs(group: RunGroup) -> str:
    """The runs of a group by short name, each linked to its job page."""
    named = [link(run.url, run_label(run)) for run in group.runs[:RUNS_NAMED]]
    more = group.size - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _flaky_note(job: JobView) -> str:
    """Evidence of flakiness: a shard that failed and passed at a commit of the streak,
    its last green or the pass that ended it; the failed run is linked to look at. When the
    job's verdict already says why it looks flaky, only the commit and the link are added."""
    if not job.flaky:
        return ""
    url = job.flaky_url if job.flaky_url and safe_url(job.flaky_url) else None
    at = f" at `{_text(job.flaky_sha[:7], 7)}`" if job.flaky_sha else ""
    if job.verdict is not None:
        label = f"flaky run {job.flaky_sha[:7]}" if job.flaky_sha else "flaky run"
        return f" · {link(url, label)}" if url else ""
    note = f" · :warning: flaky{at} (failed, then passed on a rerun"
    if url:
        note += f": {link(url, 'failed run')}"
    return note + ")"


def _range_blocks(view: AlertView) -> list[Block]:
    """Last green to first red, and the commits in between that could be the culprit."""
    if view.last_green is None and view.first_red is None and not view.suspects:
        return []
    green = _commit_link(view, view.last_green.sha) if view.last_green else "_not found_"
    listed = {commit.sha for commit in view.suspects[:SUSPECTS_SHOWN]}
    if view.first_red is None:
        red = "_not found_"
    elif view.first_red.sha in listed:  # the suspect line below links it: no second link
        red = f"`{_text(view.first_red.sha[:7], 10)}`"
    else:
        red = _commit_link(view, view.first_red.sha)
    count = view.suspect_count if view.suspect_count is not None else len(view.suspects)
    noun = "suspect" if count == 1 else "suspects"
    header = f"*Regression range:* last green {green} → first red {red} · *{count} {noun}*"
    if view.ranked:
        header += ", most likely first"
    lines = [_suspect_line(view, commit) for commit in view.suspects[:SUSPECTS_SHOWN]]
    if count > SUSPECTS_SHOWN:
        lines.append(f"_+{count - SUSPECTS_SHOWN} more suspects_")
    return _sections(header, lines)


def _suspect_line(view: AlertView, commit: CommitView) -> str:
    line = f"• {_commit_link(view, commit.sha)} {_text(commit.title, COMMIT_TITLE_CHARS)}"
    if commit.author:
        line += f" — {_text(commit.author, NAME_CHARS)}"
    if commit.pr_number is not None:
        line += f" ({_pr_link(view, commit.pr_number)})"
    if view.ranked and commit.reasons:
        line += f"\n      ↳ {reason_text('; '.join(commit.reasons[:2]), REASON_CHARS)}"
    return line


def _external_blocks(view: AlertView) -> list[Block]:
    """Alerts from Grafana: what fired, how urgent, for whom and why (their links go below)."""
    blocks: list[Block] = []
    for alert in view.external[:EXTERNAL_SHOWN]:
        icon = ":bell:" if alert.status == "firing" else ":white_check_mark:"
        text = f"{icon} *{_text(alert.source.capitalize(), 30)}:* {_text(alert.title, TITLE_CHARS)}"
        if alert.occurred_at is not None:
            text += f" · since {date(alert.occurred_at)}"
        fields = [("Status", alert.status)]
        fields += [("Priority", alert.priority), ("Team", alert.team), ("Reason", alert.reason)]
        block = _section(text)
        block["fields"] = [
            {"type": "mrkdwn", "text": f"*{name}*\n{_text(value, REASON_CHARS)}"}
            for name, value in fields
            if value
        ]
        blocks.append(block)
    hidden = len(view.external) - EXTERNAL_SHOWN
    if hidden > 0:
        blocks.append(_context(f"_+{hidden} more external alerts_"))
    return blocks


def _links_line(view: AlertView) -> str:
    """HUD, dashboards, runbook, silence: one line, each URL once, within the context limit."""
    candidates: list[tuple[str, str]] = list(view.links.items())
    for alert in view.external:
        for key, label in _EXTERNAL_LINK_LABELS.items():
            if alert.links.get(key):
                candidates.append((label, alert.links[key]))
    parts: list[str] = []
    seen: set[str] = set()  # URLs and labels: a link, or two links named alike, show once
    size = 0
    for label, url in candidates:
        if url in seen or label in seen or safe_url(url) is None:
            continue
        part = link(url, truncate(plain(label), 40))
        if size + len(part) + 3 > MAX_CONTEXT_TEXT:
            break
        seen.update((url, label))
        parts.append(part)
        size += len(part) + 3
    return " · ".join(parts)


def _footer(view: AlertView) -> str:
    return (
        f"Alert `{_text(view.short_id, 20)}` · {_text(view.repo, 100)}@{_text(view.branch, 100)}"
        f" · route {_text(view.route, 50)} · opened {date(view.opened_at)}"
    )


def _actions(view: AlertView) -> Block:
    """The buttons; each carries the alert id (the user picker has no value: read block_id)."""
    alert_id = str(view.id)
    acked = view.acked_by is not None or view.state == "acknowledged"
    elements: list[Block] = [
        _button("Unacknowledge", "alert_unack", alert_id)
        if acked
        else _button("Acknowledge", "alert_ack", alert_id, style="primary"),
    ]
    assign: Block = {
        "type": "users_select",
        "action_id": "alert_assign",
        "placeholder": _plain("Assign…"),
    }
    if view.assignee and mention(view.assignee).startswith("<@"):
        assign["initial_user"] = view.assignee
    elements.append(assign)
    elements.append(
        {
            "type": "static_select",
            "action_id": "alert_snooze",
            "placeholder": _plain("Snooze…"),
            "options": [
                {"text": _plain(label), "value": f"{alert_id}|{code}"}
                for code, label in SNOOZE_CHOICES
            ],
        }
    )
    if view.state == "bisecting":
        cancel = _button("Cancel bisect", "alert_bisect_cancel", alert_id)
        cancel["confirm"] = {
            "title": _plain("Cancel the bisect?"),
            "text": _plain("Runs already started finish on CI, but the bisect stops "
                           "and names no culprit."),
            "confirm": _plain("Cancel bisect"),
            "deny": _plain("Keep bisecting"),
        }
        elements.append(cancel)
    elif view.jobs:
        elements.append(_button("Bisect", "alert_bisect", alert_id))
    if view.jobs and any(not job.recovered for job in view.jobs):
        elements.append(_button("Retry failed jobs", "alert_retry", alert_id))
    resolve = _button("Resolve", "alert_resolve", alert_id, style="danger")
    resolve["confirm"] = {
        "title": _plain("Resolve this alert?"),
        "text": _plain(
            f"Alert {truncate(plain(view.short_id), 20)} will be marked resolved. "
            "If its jobs fail on a newer commit it reopens here; a new breakage "
            "opens a new alert that links back."
        ),
        "confirm": _plain("Resolve"),
        "deny": _plain("Cancel"),
    }
    elements.append(resolve)
    return {
        "type": "actions",
        "block_id": f"alert:{view.id}:actions"[:MAX_ID],
        "elements": elements,
    }


# ------------------------------------------------------------------ block makers


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": _plain(truncate(text, MAX_BUTTON_TEXT)),
        "action_id": action_id[:MAX_ID],
        "value": value[:MAX_VALUE],
    }
    if style:
        button["style"] = style
    return button


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}


def _context(text: str) -> Block:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(text, MAX_CONTEXT_TEXT)}],
    }


def _sections(header: str, lines: Iterable[str]) -> list[Block]:
    """Pack whole lines into as few sections as fit 3000 characters each.

    Cutting between lines (never inside one) keeps every link and code span intact.
    """
    chunks: list[str] = [header]
    for line in lines:
        line = truncate(line, MAX_SECTION_TEXT)
        if len(chunks[-1]) + 1 + len(line) <= MAX_SECTION_TEXT:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return [_section(chunk) for chunk in chunks]


# ------------------------------------------------------------------ thread replies


def render_event(view: EventView, alert: AlertView) -> str:
    """A quiet thread reply for one event.

    Only pages mention anyone, by design: ``opened`` (the on-call, when the route pages
    at open), ``assigned`` (the assignee), ``reopened`` (who resolved it by hand),
    ``reminder`` and ``escalated`` (their targets), and ``bisect_found`` its culprit's
    author when Slack knows them; every
    other reply names people by display name, so routine updates ping nobody.
    """
    writer = _EVENT_WRITERS.get(view.kind)
    text = writer(view, alert) if writer else f"_{_text(str(view.kind), 50)}_"
    return truncate(text, MAX_REPLY_TEXT)


def _who(event: EventView) -> str:
    """The actor without a mention: display name, else the bare id, else the bot."""
    if event.actor_name:
        return f"*{_text(event.actor_name, NAME_CHARS)}*"
    if event.actor:
        return f"`{_text(event.actor, 30)}`"
    return "the bot"


def _data_text(event: EventView, key: str, limit: int = REASON_CHARS) -> str:
    value = event.data.get(key)
    return _text(str(value), limit) if value not in (None, "") else ""


def _mentions(event: EventView) -> str:
    ids = event.data.get("mentions") or []
    return " ".join(mention(str(slack_id)) for slack_id in list(ids)[:20])


def _event_sha(event: EventView, alert: AlertView) -> str:
    sha = event.data.get("sha")
    return _commit_link(alert, str(sha)) if sha else ""


def _opened(event: EventView, alert: AlertView) -> str:
    """Shown only when the route pages its on-call: the mention is the page."""
    who = _mentions(event)
    if who:
        return (f"{who} :rotating_light: New alert for the on-call: "
                f"{literal(alert_title(alert))}. Acknowledge or assign it to stop reminders.")
    return f":rotating_light: Alert opened: {literal(alert_title(alert))}"


def _extended(event: EventView, alert: AlertView) -> str:
    jobs = [job for job in event.data.get("jobs") or [] if isinstance(job, Mapping)]
    parts = [
        f"*{_text(str(job.get('key', '')), KEY_CHARS)}* "
        f"({_text(str(job.get('streak', '?')), 10)} commits)"
        for job in jobs[:JOBS_SHOWN]
    ]
    if len(jobs) > JOBS_SHOWN:
        parts.append(f"+{len(jobs) - JOBS_SHOWN} more")
    return ":repeat: Still failing: " + (", ".join(parts) or "no change in jobs")


def _job_joined(event: EventView, alert: AlertView) -> str:
    text = f":heavy_plus_sign: *{_data_text(event, 'key', KEY_CHARS)}* started failing"
    sha = _event_sha(event, alert)
    return text + (f" at {sha}" if sha else "")


def _job_recovered(event: EventView, alert: AlertView) -> str:
    text = f":white_check_mark: *{_data_text(event, 'key', KEY_CHARS)}* recovered"
    sha = _event_sha(event, alert)
    return text + (f" at {sha}" if sha else "")


def _job_withdrawn(event: EventView, alert: AlertView) -> str:
    """Late results showed the job's failures were no streak after all."""
    text = f":heavy_minus_sign: *{_data_text(event, 'key', KEY_CHARS)}* left this alert"
    sha = _event_sha(event, alert)
    if sha:
        text += f": it passed at {sha}" + (" on a rerun (flaky)" if event.data.get("flaky") else "")
    reason = _data_text(event, "reason")
    return text + (f" ({reason})" if reason else "")


def _job_moved(event: EventView, alert: AlertView) -> str:
    """Late results put the job's streak with another breakage."""
    key = _data_text(event, "key", KEY_CHARS)
    target = event.data.get("to")
    where = (f" alert {short_id(target)}" if isinstance(target, int) and
             not isinstance(target, bool) else " another alert")
    return (f":twisted_rightwards_arrows: *{key}* moved to{where}: late results show its "
            "failures belong to another breakage")


def _acknowledged(event: EventView, alert: AlertView) -> str:
    return f":eyes: Acknowledged by {_who(event)}"


def _unacknowledged(event: EventView, alert: AlertView) -> str:
    return f":leftwards_arrow_with_hook: Acknowledgement withdrawn by {_who(event)}"


def _assigned(event: EventView, alert: AlertView) -> str:
    """Mentions the assignee: they must hear of it, and a parent edit notifies nobody."""
    assignee = str(event.data.get("assignee") or "")
    if assignee and assignee == event.actor:
        return f":bust_in_silhouette: {_who(event)} took this alert"
    shown = mention(assignee) if assignee else "someone"
    return f":bust_in_silhouette: {shown}: {_who(event)} assigned this alert to you"


def _snoozed(event: EventView, alert: AlertView) -> str:
    until = str(event.data.get("until") or "")
    if until == "green":
        when = " until the jobs are green"
    elif until:
        when = f" until {_until(until, alert)}"
    else:
        when = ""
    return f":zzz: Snoozed{when} by {_who(event)}"


def _until(until: str, alert: AlertView) -> str:
    """An ISO time becomes a date token; anything else is taken as a commit sha."""
    try:
        return date(datetime.fromisoformat(until))
    except ValueError:
        return f"{_commit_link(alert, until)} lands"


def _unsnoozed(event: EventView, alert: AlertView) -> str:
    return f":alarm_clock: Unsnoozed by {_who(event)}"


def _snooze_expired(event: EventView, alert: AlertView) -> str:
    return ":alarm_clock: Snooze expired; the alert is active again."


def _woke(event: EventView, alert: AlertView) -> str:
    key = _data_text(event, "key", KEY_CHARS)
    cause = f": *{key}* started failing" if key else ": a new job started failing"
    return f":alarm_clock: Snooze ended early{cause}."


def _resolved(event: EventView, alert: AlertView) -> str:
    text = ":white_check_mark: Resolved"
    if event.actor:
        text += f" by {_who(event)}"
    seconds = event.data.get("duration_s")
    if isinstance(seconds, int | float):
        text += f" after {format_duration(timedelta(seconds=seconds))}"
    sha = _event_sha(event, alert)
    if sha:
        text += f": jobs green again at {sha}"
    reason = _data_text(event, "reason")
    return text + (f" ({reason})" if reason else "")


def _reopened(event: EventView, alert: AlertView) -> str:
    """Mentions whoever resolved it by hand: they judged it done and should hear otherwise."""
    key = _data_text(event, "key", KEY_CHARS)
    reason = _data_text(event, "reason")
    text = ":rotating_light: Reopened" + (f": *{key}* is failing again" if key else "")
    sha = _event_sha(event, alert)
    text += f" at {sha}" if sha and key else ""
    text += f" ({reason})" if reason else ""
    who = _mentions(event)
    return f"{who} {text}" if who else text


def _follows(event: EventView, alert: AlertView) -> str:
    """A new breakage of a job someone resolved by hand: link the earlier alert's thread."""
    previous = event.data.get("previous")
    if not isinstance(previous, int) or isinstance(previous, bool):
        return ":link: This follows an alert that was resolved by hand."
    name = _text(str(event.data.get("previous_short") or f"A{previous}"), 20)
    url = safe_url(str(event.data.get("url") or ""))
    shown = link(url, name) if url else f"`{name}`"
    return (f":link: Follows {shown}, resolved by hand while this job was failing; "
            "the job passed since, so this is a new breakage.")


def _reminder(event: EventView, alert: AlertView) -> str:
    age = event.data.get("age_s")
    since = (f" after {format_duration(timedelta(seconds=age))}"
             if isinstance(age, int | float) else "")
    return (
        f"{_mentions(event)} :bell: Reminder: this alert is still open and unowned{since}.".lstrip()
    )


def _escalated(event: EventView, alert: AlertView) -> str:
    priority = _data_text(event, "priority", 10) or shown_priority(alert)
    age = event.data.get("age_s")
    since = (f" after {format_duration(timedelta(seconds=age))}"
             if isinstance(age, int | float) else "")
    return (
        f"{_mentions(event)} :arrow_up: Escalated to {priority}: "
        f"nobody has acknowledged this alert{since}."
    ).lstrip()


def _bisect_started(event: EventView, alert: AlertView) -> str:
    text = ":mag: Bisect started"
    if event.actor:
        text += f" by {_who(event)}"
    key = _data_text(event, "key", KEY_CHARS)
    if key:
        text += f" on *{key}*"
    suspects = event.data.get("suspects")
    per_round = event.data.get("runs_per_round")
    if isinstance(suspects, int):
        text += f": {suspects} suspects"
        if isinstance(per_round, int) and per_round > 0:
            rounds = bisect_rounds(suspects, per_round)
            text += f", {per_round} runs per round, about {rounds} rounds"
    likeliest = event.data.get("likeliest")
    if likeliest and event.data.get("guided"):
        text += (f"; the first round brackets the likeliest suspect "
                 f"{_commit_link(alert, str(likeliest))}")
    return text


def bisect_rounds(suspects: int, runs_per_round: int) -> int:
    """Rounds a k-ary bisect needs: each round splits the range into ``k + 1`` parts."""
    rounds, left = 0, suspects
    while left > 1:
        left = -(-left // (runs_per_round + 1))
        rounds += 1
    return rounds


def _bisect_round(event: EventView, alert: AlertView) -> str:
    number = _data_text(event, "round", 10) or "?"
    before = _data_text(event, "before", 10) or "?"
    after = _data_text(event, "after", 10) or "?"
    text = f":mag: Bisect round {number}: {before} → {after} suspects"
    probes = [p for p in event.data.get("probes") or [] if isinstance(p, Mapping)]
    lines = [_probe_line(probe, alert) for probe in probes[:PROBES_SHOWN]]
    if len(probes) > PROBES_SHOWN:
        lines.append(f"• _+{len(probes) - PROBES_SHOWN} more runs_")
    return "\n".join([text, *lines])


_PROBE_OUTCOMES = {
    "fail": ":x: fails",
    "pass": ":white_check_mark: passes",
    "inconclusive": ":grey_question: no answer",
}


def _probe_line(probe: Mapping[str, Any], alert: AlertView) -> str:
    """One run of a round: the commit, what it said, and a link to the run."""
    sha = str(probe.get("sha") or "")
    line = f"• {_commit_link(alert, sha) if sha else '?'} "
    line += _PROBE_OUTCOMES.get(str(probe.get("outcome")), ":hourglass: pending")
    url = safe_url(str(probe.get("url") or ""))
    if url:
        line += f" · {link(url, 'run')}"
    detail = probe.get("detail")
    if detail and probe.get("outcome") != "pass":
        line += f" · {_text(str(detail), DETAIL_CHARS)}"
    return line


def _bisect_found(event: EventView, alert: AlertView) -> str:
    """The culprit, its author (mentioned when known in Slack: they should look), the PR
    and the suggested next step."""
    sha = _event_sha(event, alert) or "an unknown commit"
    title = _data_text(event, "title", COMMIT_TITLE_CHARS)
    text = f":dart: Bisect found the culprit: {sha}" + (f" {title}" if title else "")
    author_id = str(event.data.get("author_slack") or "")
    author = _data_text(event, "author", NAME_CHARS)
    if author_id and mention(author_id).startswith("<"):
        text += f" by {mention(author_id)}"
    elif author:
        text += f" by *{author}*"
    pr = event.data.get("pr")
    pr_link = _pr_link(alert, pr) if isinstance(pr, int) and not isinstance(pr, bool) else ""
    if pr_link:
        text += f" ({pr_link})"
    if event.data.get("confirmed"):
        text += " (confirmed by rerunning it and its parent)"
    else:
        text += " (not confirmed yet: CI is flaky, check before reverting)"
    raw_revert = str(event.data.get("revert") or "")
    revert = code_line(raw_revert, REVERT_CHARS)
    if revert and pr_link and raw_revert.startswith("@"):  # a merge-bot command: comment it
        text += f"\nNext step: comment {revert} on {pr_link}"
    elif revert:
        text += f"\nNext step: {revert}"
    return text


def _bisect_failed(event: EventView, alert: AlertView) -> str:
    reason = _data_text(event, "reason")
    text = ":x: Bisect failed" + (f": {reason}" if reason else "")
    shas = [str(sha) for sha in event.data.get("candidates") or []][:SUSPECTS_SHOWN]
    count = event.data.get("candidate_count")
    if shas:
        left = ", ".join(_commit_link(alert, sha) for sha in shas)
        more = count - len(shas) if isinstance(count, int) else 0
        text += f"\nThe culprit is one of: {left}" + (f" and {more} more" if more > 0 else "")
    return text


def _bisect_cancelled(event: EventView, alert: AlertView) -> str:
    reason = _data_text(event, "reason")
    return f":no_entry_sign: Bisect cancelled by {_who(event)}" + (f" ({reason})" if reason else "")


def _grafana_firing(event: EventView, alert: AlertView) -> str:
    title = _data_text(event, "title", TITLE_CHARS) or "alert"
    reason = _data_text(event, "reason")
    return f":bell: Grafana alert firing: {title}" + (f" ({reason})" if reason else "")


def _grafana_resolved(event: EventView, alert: AlertView) -> str:
    title = _data_text(event, "title", TITLE_CHARS) or "alert"
    return f":bell: Grafana alert resolved: {title}"


def _job_infra(event: EventView, alert: AlertView) -> str:
    cause = _data_text(event, "cause", 200) or "infrastructure"
    return (f":construction: *{_data_text(event, 'key', KEY_CHARS)}* failed only for "
            f"infrastructure reasons ({cause}): not a regression, taken out of this alert")


def _retry_requested(event: EventView, alert: AlertView) -> str:
    jobs = [str(j) for j in event.data.get("jobs") or []]
    labels = [literal(run_label(FailedRunView(key="", job_name=j))) for j in jobs[:RUNS_NAMED]]
    more = len(jobs) - len(labels)
    names = ", ".join(labels) + (f" and {more} more" if more > 0 else "")
    sha = _event_sha(event, alert)
    if event.data.get("automatic"):
        return (f":repeat: The bot retried {len(jobs)} failed "
                f"{'job' if len(jobs) == 1 else 'jobs'} automatically (a first failure)"
                + (f" at {sha}" if sha else "") + (f": {names}" if names else ""))
    return (f":repeat: {_who(event)} asked to retry {len(jobs)} failed "
            f"{'job' if len(jobs) == 1 else 'jobs'}" + (f" at {sha}" if sha else "")
            + (f": {names}" if names else ""))


def _retry_result(event: EventView, alert: AlertView) -> str:
    results = [r for r in event.data.get("results") or [] if isinstance(r, Mapping)]
    parts = []
    for result in results[:RUNS_NAMED * 2]:
        label = literal(run_label(FailedRunView(key="", job_name=str(result.get("job", "")))))
        outcome = str(result.get("outcome") or "")
        parts.append(f"{label} {_RETRY_OUTCOMES.get(outcome, _RETRY_WORDS.get(outcome, outcome))}")
    return ":repeat: Retry results: " + (", ".join(parts) or "none")


_EVENT_WRITERS: dict[str, Callable[[EventView, AlertView], str]] = {
    "opened": _opened,
    "extended": _extended,
    "job_joined": _job_joined,
    "job_recovered": _job_recovered,
    "job_withdrawn": _job_withdrawn,
    "job_moved": _job_moved,
    "acknowledged": _acknowledged,
    "unacknowledged": _unacknowledged,
    "assigned": _assigned,
    "snoozed": _snoozed,
    "unsnoozed": _unsnoozed,
    "snooze_expired": _snooze_expired,
    "woke": _woke,
    "resolved": _resolved,
    "reopened": _reopened,
    "follows": _follows,
    "reminder": _reminder,
    "escalated": _escalated,
    "bisect_started": _bisect_started,
    "bisect_round": _bisect_round,
    "bisect_found": _bisect_found,
    "bisect_failed": _bisect_failed,
    "bisect_cancelled": _bisect_cancelled,
    "grafana_firing": _grafana_firing,
    "grafana_resolved": _grafana_resolved,
    "retry_requested": _retry_requested,
    "retry_result": _retry_result,
    "job_infra": _job_infra,
}


# --------------------------------------------------------------------- list lines


def render_alert_summary(view: AlertView, now: datetime | None = None) -> str:
    """One line per alert for lists: short id, title, then who has it and for how long.

    For example ``A3 [P2] broken-inductor: 1 Inductor job failing … — assigned to @carol,
    snoozed until green, open for 2h``. The owner is a ``<@U…>`` mention so it shows as a
    name; use these lines in ephemeral messages, App Home or modals, where mentions
    notify nobody.
    """
    now = now or datetime.now(UTC)
    title = f"`{_text(view.short_id, 20)}` {literal(alert_title(view))}"
    if view.state == "resolved":
        status = "resolved"
        if view.resolved_at is not None:
            status += f" after {_elapsed(view.opened_at, view.resolved_at)}"
        return f"{title} — {status}"
    words: list[str] = []
    if view.state == "bisecting":
        words.append("bisecting")
    if view.assignee:
        words.append(f"assigned to {_user(view.assignee)}")
    elif view.acked_by:
        words.append(f"acknowledged by {_user(view.acked_by)}")
    else:
        words.append("unowned")
    snooze = _snooze_words(view)
    if snooze:
        words.append(f"snoozed {snooze}")
    words.append(f"open for {_elapsed(view.opened_at, now)}")
    return f"{title} — {', '.join(words)}"
