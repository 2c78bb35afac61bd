"""Job names and job keys: splitting HUD names and folding shards into one key.

A streak is about a *job*, not about one of its shards, so every shard and attempt of
``test (inductor_huggingface, 2, 3, linux.g5...)`` must land under one key.
"""

from __future__ import annotations

import re

WORKFLOW_SEPARATOR = " / "

# A parenthesised group without nested parentheses; shard info only ever lives in one.
_PAREN_GROUP = re.compile(r"\(([^()]*)\)")


def split_job_name(full: str) -> tuple[str, str]:
    """Split a HUD name ``"<workflow> / <job>"`` at the first separator.

    Only the first separator belongs to the workflow: job names themselves contain
    ``" / "`` (``cuda12.8-py3.10 / test (...)``). Raises ``ValueError`` when there is no
    separator, because a name without a workflow cannot be keyed unambiguously.
    """
    workflow, sep, job_name = full.partition(WORKFLOW_SEPARATOR)
    if not sep or not workflow or not job_name:
        raise ValueError(f"job name {full!r} is not of the form '<workflow> / <job>'")
    return workflow, job_name


def _is_shard_number(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _strip_group(match: re.Match[str]) -> str:
    """Fold ``(config, shard, num_shards, runner, *qualifiers)`` to ``(config, *qualifiers)``.

    Trailing qualifiers after the runner label (``unstable``, ``mem_leak_check``,
    ``rerun_disabled_tests`` in PyTorch's matrix) are kept: they are different jobs,
    and the alert rule excludes them by name, so they must survive in the key.
    """
    parts = [part.strip() for part in match.group(1).split(",")]
    if len(parts) < 3 or not parts[0] or not all(map(_is_shard_number, parts[1:3])):
        return match.group(0)
    kept = [parts[0], *(part for part in parts[4:] if part)]
    return "(" + ", ".join(kept) + ")"


def strip_shard(job_name: str) -> str:
    """Remove shard numbers (and the runner label after them) inside parentheses.

    ``test (inductor_huggingface, 2, 3, linux.g5.4xlarge.nvidia.gpu)`` becomes
    ``test (inductor_huggingface)``; groups without shard numbers, such as
    ``test (dynamo_eager)`` or ``build (cuda 12.8)``, are left alone.
    """
    return _PAREN_GROUP.sub(_strip_group, job_name)


def job_key(workflow: str, job_name: str) -> str:
    """The key that groups all shards and attempts of one job of one workflow."""
    return f"{workflow}{WORKFLOW_SEPARATOR}{strip_shard(job_name)}"
