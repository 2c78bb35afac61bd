"""The alert's HUD link shows exactly its jobs: an anchored regex with ``useRegexFilter=true``."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.support.alerts import HF, TIMM, break_timm, broken_trunk
from tests.support.slack_side import fake_workspace, start, text_of

VARIANTS = [name.replace("(inductor_huggingface", "(dynamic_inductor_huggingface")
            for name in HF] + [name.replace("(inductor_timm", "(aot_inductor_timm")
                               for name in TIMM]


def hud_query(parent: dict) -> dict[str, list[str]]:  # type: ignore[type-arg]
    [url] = re.findall(r"<(https://hud\.pytorch\.org[^|>]+)\|HUD>", text_of(parent))
    return parse_qs(urlsplit(url.replace("&amp;", "&")).query)


def test_hud_link_of_a_two_job_alert_matches_exactly_those_jobs(tmp_path: Path) -> None:
    trunk = broken_trunk(12, first_bad=5)
    break_timm(trunk, 5, 11)
    with fake_workspace() as fake, start(tmp_path, fake, trunk, 9) as side:
        parent = side.wait_parent("2 Inductor jobs")
        query = hud_query(parent)
        assert query["useRegexFilter"] == ["true"]
        [pattern] = query["name_filter"]
        failing = [HF[1], *TIMM]  # the failing shard's siblings belong to the same job
        assert [n for n in HF + TIMM + VARIANTS if re.search(pattern, n, re.I)] == \
            HF + TIMM
        assert all(re.search(pattern, n) for n in failing)
