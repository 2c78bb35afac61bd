"""Cases from pytorch/test-infra's own tests, restated in this bot's terms.

Sources (read for their facts; nothing here is copied):

- HUD ``torchci/test/mergeCellRuns.test.ts``: several runs of one shard on one commit;
- ``tools/torchci/tests/test_check_alerts.py``: the older streak rule (threshold 2,
  newest commit first, pending skipped);
- autorevert ``pytorch_auto_revert/tests/test_signal.py``: when a signal is fixed,
  flaky, or shows a breakage pattern.

Where the peers disagree, the bot follows HUD (see ``bot/domain/ALERTS.md``); the one
place autorevert differs is pinned by ``test_mixed_commit_is_a_flaky_pass_not_a_failure``.
"""

from __future__ import annotations

from itertools import count, permutations

import pytest

from bot.domain.cells import cell_verdict, shard_verdict
from bot.domain.model import CellStatus, JobResult, PlacedCell
from bot.domain.streak import compute_streak

_ids = count(100)
SHARD = "cuda12.8 / test (inductor_timm, 1, 1, linux.g5)"


def run(conclusion: str, job_id: int | None = None, *, branch: str | None = "main",
        html_url: str | None = None, log_url: str | None = None) -> JobResult:
    """One run of the shard; "pending"/"queued"/"" mean it has not concluded."""
    unfinished = conclusion in ("pending", "queued", "")
    return JobResult(
        repo="pytorch/pytorch", sha="a" * 40, workflow="inductor", job_name=SHARD,
        job_id=next(_ids) if job_id is None else job_id,
        status="in_progress" if unfinished else "completed",
        conclusion=None if unfinished else conclusion, branch=branch,
        html_url=html_url, log_url=log_url)


def restart(conclusion: str, job_id: int | None = None) -> JobResult:
    """A run dispatched on ``trunk/{sha}`` (autorevert's restarts, a bisect's probes)."""
    return run(conclusion, job_id, branch="trunk/" + "a" * 40)


def merged(*runs: JobResult) -> CellStatus:
    return shard_verdict(SHARD, runs).status


# --- HUD mergeCellRuns ------------------------------------------------------------------------


def test_hud_a_single_run_is_shown_as_it_is_whoever_issued_it() -> None:
    for only in (run("failure"), restart("failure")):
        verdict = shard_verdict(SHARD, [only])
        assert verdict.status is CellStatus.FAILURE and verdict.shown is only


@pytest.mark.parametrize("runs", [
    (run("failure", 1), restart("success", 2)),
    (restart("success", 2), run("failure", 1)),
    (run("success", 1), restart("failure", 2)),  # the case newest-wins got wrong
    (restart("failure", 2), run("success", 1)),
    (run("success", 1), run("failure", 2)),  # a re-run attempt
    (run("failure", 1), run("success", 2)),  # a periodic scheduled twice
])
def test_hud_success_and_failure_is_flaky_in_any_order_from_any_issuer(
        runs: tuple[JobResult, ...]) -> None:
    assert merged(*runs) is CellStatus.FLAKY


def test_hud_timed_out_is_a_real_failure() -> None:
    assert merged(run("success"), restart("timed_out")) is CellStatus.FLAKY


def test_hud_only_failures_stay_a_failure_not_flaky() -> None:
    assert merged(run("failure"), restart("failure")) is CellStatus.FAILURE


def test_hud_cancelled_loses_to_any_run_in_either_order() -> None:
    for runs in permutations([run("cancelled", 1), restart("success", 2)]):
        assert merged(*runs) is CellStatus.SUCCESS
    assert merged(run("success", 1), restart("cancelled", 2)) is CellStatus.SUCCESS
    assert merged(run("cancelled", 1), run("failure", 2)) is CellStatus.FAILURE


def test_hud_a_cancelled_run_is_no_failure_evidence() -> None:
    verdict = shard_verdict(SHARD, [run("cancelled"), restart("success")])
    assert verdict.status is CellStatus.SUCCESS and verdict.failed_runs == ()


def test_hud_all_cancelled_has_no_signal() -> None:
    assert merged(run("cancelled"), restart("cancelled")) is CellStatus.NONE


@pytest.mark.parametrize(("other", "expected"), [
    ("success", CellStatus.SUCCESS), ("failure", CellStatus.FAILURE),
    ("timed_out", CellStatus.FAILURE), ("neutral", CellStatus.NONE),
    ("skipped", CellStatus.NONE), ("queued", CellStatus.PENDING),
    ("pending", CellStatus.PENDING),
])
def test_hud_cancelled_loses_to_each_class(other: str, expected: CellStatus) -> None:
    for runs in permutations([run("cancelled", 1), run(other, 2)]):
        verdict = shard_verdict(SHARD, runs)
        assert verdict.status is expected and verdict.shown.job_id == 2


def test_hud_an_empty_conclusion_is_pending() -> None:
    assert merged(run(""), run("cancelled")) is CellStatus.PENDING
    assert merged(run(""), run("skipped")) is CellStatus.PENDING


def test_hud_the_failed_run_stays_reachable_from_a_flaky_cell_with_its_own_log() -> None:
    failing = run("failure", html_url="https://example.com/failed-run",
                  log_url="https://example.com/failed-log")
    verdict = cell_verdict([run("success"), failing])
    assert verdict.status is CellStatus.FLAKY
    (linked,) = verdict.flaky_runs
    assert (linked.html_url, linked.log_url) == ("https://example.com/failed-run",
                                                 "https://example.com/failed-log")


def test_hud_skipped_keeps_losing_to_a_real_result() -> None:
    assert merged(run("skipped", 2), restart("failure", 1)) is CellStatus.FAILURE


def test_hud_a_completed_result_outranks_a_still_pending_run() -> None:
    assert merged(restart("pending", 2), run("success", 1)) is CellStatus.SUCCESS


def test_hud_restart_only_cells_report_their_real_conclusion() -> None:
    assert merged(restart("failure")) is CellStatus.FAILURE
    assert merged(restart("skipped")) is CellStatus.NONE


def test_hud_the_shown_run_is_the_newest_of_its_class_by_number() -> None:
    assert shard_verdict(SHARD, [run("success", 9), restart("success", 10)]).shown.job_id == 10


# --- check_alerts.py (threshold 2, newest commit first) ---------------------------------------


def streak_of(*newest_first: CellStatus) -> int:
    n = len(newest_first)
    cells = [PlacedCell(n - i, f"{n - i:040x}", status) for i, status in enumerate(newest_first)]
    return compute_streak(cells).length


F, S, P, FLAKY = CellStatus.FAILURE, CellStatus.SUCCESS, CellStatus.PENDING, CellStatus.FLAKY


def test_check_alerts_pending_newest_commits_are_skipped() -> None:
    assert streak_of(P, P, F, F) >= 2  # test_alert


def test_check_alerts_a_newer_success_clears_the_alert() -> None:
    assert streak_of(S, P, F, F) == 0  # test_no_alert_when_cleared
    assert streak_of(P, S, F, F) == 0


def test_check_alerts_failures_must_be_consecutive() -> None:
    assert streak_of(F, S, F) == 1  # test_no_alert_when_not_consecutive


def test_check_alerts_a_pending_commit_between_failures_does_not_break_them() -> None:
    assert streak_of(F, P, F) == 2  # test_alert_when_pending_job


# --- autorevert signal.py ---------------------------------------------------------------------


def test_autorevert_fixed_when_the_newest_finished_commit_passed_beside_a_pending_run() -> None:
    newest = cell_verdict([run("pending"), run("success")]).status
    assert newest is CellStatus.SUCCESS and streak_of(newest, F) == 0


def test_autorevert_not_fixed_when_the_newest_finished_commit_failed() -> None:
    assert streak_of(F, S) == 1


def test_autorevert_fixed_after_skipping_an_all_pending_commit() -> None:
    assert streak_of(P, S) == 0


def test_autorevert_flaky_is_success_and_failure_on_one_commit() -> None:
    assert cell_verdict([run("success"), run("failure")]).status is CellStatus.FLAKY
    assert streak_of(S, F) == 0 and streak_of(F, S) == 1  # separate commits: not flaky


def test_autorevert_basic_pattern_names_the_suspect_and_the_base() -> None:
    n = 4
    shas = ["sha_newest", "sha_newer", "sha_mid", "sha_old"]
    statuses = [F, F, F, S]
    cells = [PlacedCell(n - i, shas[i], st) for i, st in enumerate(statuses)]
    streak = compute_streak(cells)
    assert streak.length == 3
    assert streak.first_failure is not None and streak.first_failure.sha == "sha_mid"
    assert streak.last_green is not None and streak.last_green.sha == "sha_old"
    assert streak.newest_failure is not None and streak.newest_failure.sha == "sha_newest"


def test_autorevert_no_pattern_when_fixed() -> None:
    assert streak_of(S, F, S) == 0


def test_mixed_commit_is_a_flaky_pass_not_a_failure() -> None:
    """The peers disagree here: autorevert keeps a commit with both a success and a
    failure in its failing partition; HUD shows it as a flaky pass. The bot follows HUD,
    so the mixed commit ends the streak."""
    mixed = cell_verdict([run("failure"), restart("success")]).status
    assert mixed is CellStatus.FLAKY
    assert streak_of(F, mixed, F, S) == 1
