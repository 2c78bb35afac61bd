"""``python -m bot replay``: feed recorded HUD pages and GitHub deliveries through live ingest.

Nothing is sent anywhere. "Now" is the time of the newest input read so far, so each
alert is judged as the live bot would have judged it when that input arrived.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from json.scanner import make_scanner
from pathlib import Path
from typing import Any, TextIO

from bot.config import ConfigError, load_routes
from bot.domain.payload import PayloadError
from bot.domain.route import Route
from bot.domain.suspects import sets_apart
from bot.ingest.github_payloads import parse_push, parse_workflow_job
from bot.ingest.hud import parse_hud_page
from bot.ingest.pipeline import Commits, Fact, Ingestor, IngestReport
from bot.store.alert_evidence import AlertFacts, JobFacts, alert_evidence
from bot.store.db import DatabaseUnusable, Store
from bot.store.details import AlertDetail, alert_detail, alert_ids
from bot.store.results import Interned

BATCH_MIN = 15_000  # a push ends a transaction of at least this many deliveries
BATCH_MAX = 16_000  # deliveries per transaction (and batch) at most
# a batch is judged at its newest input's time: it ends once its inputs span this long, so
# "now" (alert open times, the max_age gate) stays this close to what a live bot had
BATCH_SPAN = timedelta(minutes=15)


_raw_decode = json.JSONDecoder().raw_decode
# the decoder's own scanner (C), called without raw_decode's Python wrapper: a JSON value at
# the start of the line and where it ends, or StopIteration (then ``_decode`` says why)
_scan = make_scanner(json.JSONDecoder())


def _decode(line: str) -> Any:
    """One NDJSON line (``json.loads`` without its wrapper: nothing may follow the value)."""
    text = line if line[:1] not in (" ", "\t") else line.lstrip()
    value, end = _raw_decode(text)
    if text[end:].strip():
        raise ValueError(f"extra data after the JSON value at column {end + 1}")
    return value


class ReplayClock:
    """The newest timestamp seen in the inputs so far."""

    def __init__(self) -> None:
        self.current: datetime | None = None

    def see(self, *times: datetime | None) -> None:
        for when in times:
            if when is not None and (self.current is None or when > self.current):
                self.current = when

    def __call__(self) -> datetime:
        return self.current or datetime.now(UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="replay recorded HUD pages / GitHub deliveries and print the alerts",
        description=__doc__)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="HUD API responses (*.json) and NDJSON files of GitHub deliveries")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--db", help="SQLite file to keep (default: a temporary file)")
    parser.add_argument("--config", help="routing TOML (default: $BOT_CONFIG or built-in)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    try:
        routes = load_routes(args.config or os.environ.get("BOT_CONFIG"))
    except ConfigError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"replay: no such file: {', '.join(missing)} (give HUD pages *.json and NDJSON "
              "delivery files, e.g. examples/inductor-incident/)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or Path(tmp) / "replay.db")
        try:
            store.migrate()
            details, problems = replay(store, routes, paths, sys.stderr)
            facts = evidence_of(store, routes, details)
        except DatabaseUnusable as exc:
            print(f"replay: {exc.explain('--db')}", file=sys.stderr)
            return 2
        finally:
            store.close()
    if args.format == "json":
        json.dump({"alerts": [alert_json(d, facts.get(d.id)) for d in details]}, sys.stdout,
                  indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(details, facts))
    # malformed NDJSON lines are skipped and reported; a HUD page that cannot be read
    # at all (not JSON, or refused) leaves a hole in trunk order, so the run fails
    return 1 if problems.get("unusable") else 0


def replay(store: Store, routes: tuple[Route, ...], paths: list[Path],
           errors: TextIO, batch: tuple[int, int] = (BATCH_MIN, BATCH_MAX),
           ) -> tuple[list[AlertDetail], dict[str, int]]:
    """Replay every input in order; returns all alerts (oldest first) and problem counts.

    ``batch`` is (``BATCH_MIN``, ``BATCH_MAX``): (1, 1) ingests one delivery at a time, as
    a live bot would, which tests use to show batching changes no alert.
    """
    clock = ReplayClock()
    ingestor = Ingestor(store, routes, clock)
    problems: dict[str, int] = {}
    report = IngestReport()
    for path in _expand(paths):
        if not path.exists():
            print(f"{path}: no such file", file=errors)
            problems["missing"] = problems.get("missing", 0) + 1
            continue
        if _is_hud(path):
            _replay_hud(path, ingestor, clock, report, errors, problems)
        else:
            _replay_ndjson(path, ingestor, clock, report, errors, problems, batch)
    db = store.db
    details = [d for i in alert_ids(db) if (d := alert_detail(db, i)) is not None]
    return details, problems


def _expand(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".json", ".ndjson",
                                                                        ".jsonl"))
        else:
            yield path


def _is_hud(path: Path) -> bool:
    if path.suffix in (".ndjson", ".jsonl"):
        return False
    with path.open("rb") as fh:
        head = fh.read(4096)
    return b'"shaGrid"' in head or path.suffix == ".json" and b'"event"' not in head[:200]


def _replay_hud(path: Path, ingestor: Ingestor, clock: ReplayClock, report: IngestReport,
                errors: TextIO, problems: dict[str, int]) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"{path}: not a JSON document: {exc}", file=errors)
        problems["unusable"] = problems.get("unusable", 0) + 1
        return
    pages = data if isinstance(data, list) else [data]
    for index, raw in enumerate(pages):
        for route_repo, route_branch in sorted({(r.repo, r.branch) for r in ingestor.routes}):
            try:
                page = parse_hud_page(raw, route_repo, route_branch)
            except PayloadError as exc:
                print(f"{path}[{index}]: not used: {exc}", file=errors)
                problems["unusable"] = problems.get("unusable", 0) + 1
                break
            for reason in page.skipped:
                print(f"{path}[{index}]: skipped: {reason}", file=errors)
            if page.skipped:
                problems["skipped"] = problems.get("skipped", 0) + len(page.skipped)
            clock.see(*(c.time for c in page.commits))
            report.merge(ingestor.ingest([
                Commits(route_repo, route_branch, tuple(reversed(page.commits))),
                *page.results]))


def _replay_ndjson(path: Path, ingestor: Ingestor, clock: ReplayClock, report: IngestReport,
                   errors: TextIO, problems: dict[str, int],
                   sizes: tuple[int, int] = (BATCH_MIN, BATCH_MAX)) -> None:
    """Deliveries in file order, ingested in batches through the live path.

    A batch is judged once its inputs span ``BATCH_SPAN``, at the time of its newest input:
    the rules are a function of the facts, so batching changes no alert, and "now" stays
    within ``BATCH_SPAN`` of what a live bot had (without that bound, a batch reaching 34 h
    past an incident judged it too old to alert, ``max_age``, and opened it hours late).
    Batches share one transaction until it holds ``BATCH_MIN`` deliveries and a push comes,
    or ``BATCH_MAX``: a commit per short batch cost more than the rules.
    """
    batch: list[Fact] = []
    numbers: list[int] = []  # each fact's line, to name a line that fails
    files: list[tuple[str, list[tuple[str, tuple[str, ...], str]]]] = []
    least, most = sizes
    due: datetime | None = None  # the batch is judged once the clock is past this
    committing = ExitStack()  # the open transaction, shared by batches
    # the string ids batches share: re-read for every short batch, they cost more than it
    interned = Interned(ingestor.store.db)
    held = 0  # deliveries in it

    def judge() -> None:
        """The batch so far, at the clock's time, inside the open transaction."""
        nonlocal held
        if not batch and not files:
            return
        if not held:
            committing.enter_context(ingestor.store.transaction())
        # each of these is a savepoint of its own: a failing batch is retried alone
        by_repo: dict[str, list[tuple[str, tuple[str, ...], str]]] = {}
        for repo, changes in files:
            by_repo.setdefault(repo, []).extend(changes)
        for repo, changes in by_repo.items():
            ingestor.changed_files(repo, changes, "push")
        files.clear()
        _ingest(path, numbers, batch, ingestor, report, errors, problems, interned)
        held += max(len(batch), 1)
        batch.clear()
        numbers.clear()

    def commit() -> None:
        nonlocal held
        judge()
        committing.close()
        held = 0

    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                before = clock.current
                try:
                    try:  # the usual line: one JSON value, then the newline
                        delivery, end = _scan(line, 0)
                    except (StopIteration, ValueError):  # leading blanks, or not JSON
                        delivery = _decode(line)  # says which
                    else:
                        if end != len(line) and line[end:].strip():
                            raise ValueError(
                                f"extra data after the JSON value at column {end + 1}")
                    fact = _fact(delivery, ingestor, clock, files)
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    if not line.strip():
                        continue  # a blank line is no delivery
                    why = "JSON nested too deeply" if isinstance(exc, RecursionError) else exc
                    print(f"{path}:{number}: skipped: {why}", file=errors)
                    problems["malformed"] = problems.get("malformed", 0) + 1
                    continue
                if fact is None:
                    report.ignored += 1
                    continue
                now = clock.current
                if type(fact) is Commits and held + len(batch) >= least:
                    clock.current = before  # the batch so far, at its own newest time
                    commit()
                    clock.current = now
                elif batch and due is not None and now is not None and now > due:
                    clock.current = before
                    judge()
                    clock.current = now
                if not batch:
                    due = None if clock.current is None else clock.current + BATCH_SPAN
                batch.append(fact)
                numbers.append(number)
                if held + len(batch) >= most:
                    commit()
        commit()
    finally:
        committing.close()


def _ingest(path: Path, numbers: list[int], batch: list[Fact], ingestor: Ingestor,
            report: IngestReport, errors: TextIO, problems: dict[str, int],
            interned: Interned) -> None:
    """One batch; if it fails as a whole, each delivery alone, so one bad line is named."""
    if not batch:
        return
    try:
        report.merge(ingestor.ingest(batch, interned))
        return
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    for number, fact in zip(numbers, batch, strict=True):
        try:
            report.merge(ingestor.ingest([fact], interned))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"{path}:{number}: skipped: {exc}", file=errors)
            problems["malformed"] = problems.get("malformed", 0) + 1


def _fact(delivery: Any, ingestor: Ingestor, clock: ReplayClock,
          files: list[tuple[str, list[tuple[str, tuple[str, ...], str]]]]) -> Fact | None:
    """One NDJSON delivery as a fact to ingest (None: an event replay does not use)."""
    if type(delivery) is not dict or "event" not in delivery or "payload" not in delivery:
        raise ValueError('expected {"event": ..., "payload": {...}}')
    event, payload = delivery["event"], delivery["payload"]
    if event == "workflow_job":  # nearly every line
        result = parse_workflow_job(payload)
        when = result.completed_at or result.started_at  # it started before it completed
        if when is not None and (clock.current is None or when > clock.current):
            clock.current = when
        return result
    if event == "push":
        push = parse_push(payload)
        clock.see(*(c.time for c in push.commits))
        if push.branch is None or push.deleted:
            return None
        if ingestor.watches_commits(push.repo, push.branch):
            files.append((push.repo, [(c.sha, tuple(c.files), c.message)
                                      for c in push.changes]))
        return Commits(push.repo, push.branch, tuple(push.commits), push.before)
    return None


# --- output ---------------------------------------------------------------------------------


def evidence_of(store: Store, routes: tuple[Route, ...],
                details: list[AlertDetail]) -> dict[int, AlertFacts]:
    """Each alert's evidence (EVIDENCE.md), as the Slack message shows it."""
    by_name = {r.name: r for r in routes}
    facts: dict[int, AlertFacts] = {}
    for d in details:
        route = by_name.get(d.route) or Route(name=d.route)
        facts[d.id] = alert_evidence(store.db, d, code_area=route.code_area,
                                     flaky_tests=route.flaky_tests)
    return facts


def alert_json(d: AlertDetail, facts: AlertFacts | None = None) -> dict[str, Any]:
    jobs = facts.jobs if facts is not None else {}
    ranked = sets_apart(facts.ranking) if facts is not None else False
    return {
        "id": d.id,
        "state": "resolved" if d.state == "resolved" else "open",
        "repo": d.repo,
        "branch": d.branch,
        "route": d.route,
        "team": d.team,
        "priority": d.priority,
        "opened_at": d.opened_at.isoformat(),
        "resolved_at": d.resolved_at.isoformat() if d.resolved_at else None,
        "resolved_sha": d.resolved_sha,
        "withdrawn": d.withdrawn,
        "first_failing_sha": d.first_red.sha if d.first_red else None,
        "last_green_sha": d.last_green.sha if d.last_green else None,
        "suspect_count": d.suspect_count,
        "suspects": [c.sha for c in d.suspects],
        "jobs": [
            {
                "key": j.key,
                "streak": j.streak,
                "first_failing_sha": j.first_failing_sha,
                "newest_failing_sha": j.newest_failing_sha,
                "last_green_sha": j.last_green_sha,
                "recovered": j.recovered,
                "withdrawn": j.withdrawn,
                "flaky": j.flaky,
                "flaky_sha": j.flaky_sha,
                "flaky_url": j.flaky_url,
                "log_url": j.log_url or j.html_url,
                **_verdict_json(jobs.get(j.key)),
            }
            for j in d.jobs
        ],
        "failed_runs": [
            {"key": r.key, "job": r.job_name, "state": r.state, "line": r.headline,
             "class": r.classification.kind.value if r.classification else None,
             "signature": r.signature}
            for r in (facts.runs if facts is not None else ())
        ],
        "suspects_ranked": ranked,
        "ranking": [{"sha": s.sha, "score": s.score, "reasons": list(s.reasons)}
                    for s in (facts.ranking if facts is not None else ())],
    }


def _verdict_json(facts: JobFacts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {"verdict": facts.judgement.verdict.value,
            "evidence": list(facts.judgement.evidence),
            "against": list(facts.judgement.against)}


def render_text(details: list[AlertDetail],
                facts: dict[int, AlertFacts] | None = None) -> str:
    if not details:
        return "No alerts.\n"
    out: list[str] = []
    for d in details:
        known = (facts or {}).get(d.id)
        state = "RESOLVED" if d.state == "resolved" else d.state.upper()
        if d.withdrawn:
            state += f" (withdrawn: {d.resolve_reason or 'late results took its jobs back'})"
        active = [j for j in d.jobs if not j.recovered]
        out.append(f"#{d.id} [{d.priority}] {d.team}: {len(active) or len(d.jobs)} "
                   f"{d.route} job(s) failing on {d.repo}@{d.branch}  {state}")
        out.append(f"  opened {d.opened_at:%Y-%m-%d %H:%M} UTC"
                   + (f", resolved {d.resolved_at:%Y-%m-%d %H:%M} UTC at {d.resolved_sha[:10]}"
                      if d.resolved_at and d.resolved_sha else ""))
        green = d.last_green.sha[:10] if d.last_green else "unknown"
        red = d.first_red.sha[:10] if d.first_red else "?"
        out.append(f"  range: last green {green} .. first red {red} "
                   f"({d.suspect_count} suspect{'s' if d.suspect_count != 1 else ''})")
        for j in d.jobs:
            marks = " [recovered]" if j.recovered else ""
            if j.withdrawn:
                marks += " [withdrawn: late results split its streak]"
            if j.flaky:
                marks += f" [flaky at {j.flaky_sha[:10]}]" if j.flaky_sha else " [flaky seen]"
            out.append(f"  - {j.key}: streak {j.streak}, first {j.first_failing_sha[:10]}, "
                       f"newest {j.newest_failing_sha[:10]}{marks}")
            if j.log_url or j.html_url:
                out.append(f"      log: {j.log_url or j.html_url}")
            job = known.jobs.get(j.key) if known is not None else None
            line = (job.headline if job is not None else None) or j.failure_line
            if line:
                out.append(f"      {line[:200]}")
            if job is not None and job.judgement.telling:
                verdict = job.judgement
                text = f"{verdict.verdict.label}: {'; '.join(verdict.evidence)}"
                if verdict.against:
                    text += f"; but {'; '.join(verdict.against)}"
                out.append(f"      {text}")
            if j.flaky_url:
                out.append(f"      flaky: failed run {j.flaky_url}")
        ranking = known.ranking if known is not None else ()
        guided = sets_apart(ranking)
        order = ([d.suspects[i.position] for i in ranking if i.position < len(d.suspects)]
                 if guided else list(d.suspects))
        why = {s.sha: s.reasons for s in ranking if s.score > 0} if guided else {}
        if guided:
            out.append("    suspects, most likely first:")
        for c in order[:10]:
            pr = f" (#{c.pr_number})" if c.pr_number and f"#{c.pr_number}" not in c.title else ""
            out.append(f"    suspect {c.sha[:10]} {c.title[:80]}{pr} by {c.author or '?'}")
            if why.get(c.sha):
                out.append(f"      why: {'; '.join(why[c.sha][:2])}")
        if d.suspect_count > 10:
            out.append(f"    ... +{d.suspect_count - 10} more suspects")
        out.append("")
    return "\n".join(out)
