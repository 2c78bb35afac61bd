"""The HUD name filter selects exactly the alert's jobs, shards included, variants excluded."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.hud_filter import js_escape, name_filter
from bot.domain.jobkey import job_key, split_job_name

HF = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"
TIMM = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"
NAMES = [
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 1, 2, linux.g5.4xlarge)",
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 2, 2, linux.g5.4xlarge)",
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm, 1, 1, linux.g5.4xlarge)",
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (dynamic_inductor_huggingface, 1, 2, linux.g5)",
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (aot_inductor_huggingface, 1, 1, linux.g5)",
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (cpu_inductor_huggingface, 1, 1, linux.2xl)",
    "inductor-periodic / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 1, 1, x)",
]


def shown(pattern: str) -> list[str]:
    """What HUD shows: names the pattern matches, case-insensitively, anywhere (``search``)."""
    return [n for n in NAMES if re.search(pattern, n, re.IGNORECASE)]


def test_several_jobs_show_exactly_their_shards() -> None:
    assert shown(name_filter([HF, TIMM])) == NAMES[:3]


def test_one_job_does_not_match_its_variants_or_other_workflows() -> None:
    assert shown(name_filter([HF])) == NAMES[:2]


def test_keys_without_shards_match_only_themselves() -> None:
    pattern = name_filter(["lint / lintrunner"])
    assert re.search(pattern, "lint / lintrunner")
    assert not re.search(pattern, "lint / lintrunner-noclang")
    assert name_filter([]) == ""


@given(st.text(min_size=1, max_size=40))
def test_any_name_is_matched_literally(name: str) -> None:
    assert re.fullmatch(js_escape(name), name)


@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
def test_filter_of_keys_matches_every_shard_of_those_keys(names: list[str]) -> None:
    keys = [job_key(*split_job_name(n)) for n in names]
    matched = shown(name_filter(keys))
    assert {n for n in NAMES if job_key(*split_job_name(n)) in keys} == set(matched)


def test_qualifiers_kept_in_the_key_stay_in_place() -> None:
    name = "trunk / linux-jammy / test (default, 1, 2, linux.2xlarge, unstable)"
    key = job_key(*split_job_name(name))
    assert key == "trunk / linux-jammy / test (default, unstable)"
    assert re.search(name_filter([key]), name)
    assert not re.search(name_filter([key]), "trunk / linux-jammy / test (default, 1, 2, x)")
