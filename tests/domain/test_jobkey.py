"""Job name splitting and shard folding into job keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.jobkey import job_key, split_job_name, strip_shard

HUD_NAME = (
    "inductor / cuda12.8-py3.10-gcc9-sm86 / "
    "test (inductor_huggingface, 2, 3, linux.g5.4xlarge.nvidia.gpu)"
)

# Names as PyTorch writes them: no commas or parentheses inside a config or runner.
_word = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-."), min_size=1, max_size=20
)
_config = _word.filter(lambda s: not s.isdigit())
_workflow = st.sampled_from(["inductor", "inductor-periodic", "trunk", "inductor-perf-test"])
_build_env = st.sampled_from(["cuda12.8-py3.10-gcc9-sm86", "linux-jammy-py3.10", "rocm6.4-py3"])


def test_split_at_first_separator() -> None:
    assert split_job_name(HUD_NAME) == (
        "inductor",
        "cuda12.8-py3.10-gcc9-sm86 / "
        "test (inductor_huggingface, 2, 3, linux.g5.4xlarge.nvidia.gpu)",
    )


@pytest.mark.parametrize("bad", ["no separator", " / job", "workflow / ", ""])
def test_split_rejects_names_without_workflow(bad: str) -> None:
    with pytest.raises(ValueError):
        split_job_name(bad)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "test (inductor_huggingface, 2, 3, linux.g5.4xlarge.nvidia.gpu)",
            "test (inductor_huggingface)",
        ),
        ("env / test (default, 1, 5, linux.4xlarge)", "env / test (default)"),
        ("test (default, 1, 2)", "test (default)"),
        ("test (default, 1, 2, linux.2xlarge, mem_leak_check)", "test (default, mem_leak_check)"),
        ("test (dynamo_eager)", "test (dynamo_eager)"),
        ("build (cuda 12.8)", "build (cuda 12.8)"),
        ("test (default, x, 2, linux)", "test (default, x, 2, linux)"),
        ("build", "build"),
    ],
)
def test_strip_shard(name: str, expected: str) -> None:
    assert strip_shard(name) == expected


def test_job_key_from_hud_name() -> None:
    workflow, job_name = split_job_name(HUD_NAME)
    assert job_key(workflow, job_name) == (
        "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"
    )


@given(
    workflow=_workflow,
    env=_build_env,
    config=_config,
    runner=_word,
    num_shards=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_every_shard_of_a_job_maps_to_one_key(
    workflow: str, env: str, config: str, runner: str, num_shards: int, data: st.DataObject
) -> None:
    names = [
        f"{env} / test ({config}, {shard}, {num_shards}, {runner})"
        for shard in range(1, num_shards + 1)
    ]
    keys = {job_key(workflow, name) for name in names}
    assert keys == {f"{workflow} / {env} / test ({config})"}
    # The key must not depend on how HUD happened to space the list either.
    shard = data.draw(st.integers(min_value=1, max_value=num_shards))
    assert job_key(workflow, f"{env} / test ({config},{shard},{num_shards},{runner})") in keys


@given(
    env=_build_env,
    configs=st.lists(_config, min_size=2, max_size=2, unique=True),
    shards=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    runner=_word,
)
def test_different_configs_map_to_different_keys(
    env: str, configs: list[str], shards: tuple[int, int], runner: str
) -> None:
    first, second = (
        job_key("inductor", f"{env} / test ({config}, {shard}, 4, {runner})")
        for config, shard in zip(configs, shards, strict=True)
    )
    assert first != second


@given(workflow=_workflow, a=_workflow, b=_workflow, env=_build_env, config=_config)
def test_different_workflows_map_to_different_keys(
    workflow: str, a: str, b: str, env: str, config: str
) -> None:
    name = f"{env} / test ({config}, 1, 2, linux.g5)"
    assert (job_key(a, name) == job_key(b, name)) == (a == b)


@given(env=_build_env, config=_config, runner=_word, n=st.integers(1, 9))
def test_strip_shard_is_idempotent(env: str, config: str, runner: str, n: int) -> None:
    once = strip_shard(f"{env} / test ({config}, {n}, {n}, {runner})")
    assert strip_shard(once) == once
