"""Parsing Grafana alerting webhooks: shared fixtures, priorities, reasons, links, errors."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.domain.payload import PayloadError
from bot.ingest.grafana import (
    normalise_priority,
    parse_grafana,
    reason_from_value_string,
    reason_from_values,
)
from tests.support.fixtures import fixture_json

FIRING: dict[str, Any] = fixture_json("grafana", "alert.firing.json")
RESOLVED: dict[str, Any] = fixture_json("grafana", "alert.resolved.json")
RULE = "Inductor jobs failing for three commits in a row on Trunk"


def test_firing_fixture() -> None:
    note = parse_grafana(FIRING)
    assert note.status == "firing"
    assert note.group_key == FIRING["groupKey"]
    assert note.external_url == "https://pytorchci.grafana.net/"
    assert note.receiver == "inductor-bot webhook"
    (alert,) = note.alerts
    assert alert.fingerprint == "3c1f0a9e7b2d4c11"
    assert alert.status == "firing"
    assert alert.title == RULE
    assert alert.team == ("broken-inductor",)
    assert alert.priority == "P2"
    assert alert.reason == "Failure_Threshold=1, Number_of_Jobs_Failing=1"
    assert alert.values == {"Failure_Threshold": 1, "Number_of_Jobs_Failing": 1}
    assert alert.starts_at == datetime(2025, 12, 9, 17, 29, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.summary == RULE
    assert alert.description.startswith("One or more inductor workflow jobs")
    assert alert.labels["grafana_folder"] == "Dev Infra"
    assert alert.annotations["Priority"] == "P2"
    assert alert.links == {
        "generator": "https://pytorchci.grafana.net/alerting/grafana/aeb1c2d3e4f5/view?orgId=1",
        "dashboard": "https://pytorchci.grafana.net/d/inductor-trunk?orgId=1",
        "panel": "https://pytorchci.grafana.net/d/inductor-trunk?orgId=1&viewPanel=2",
        "silence": FIRING["alerts"][0]["silenceURL"],
        "runbook": "https://github.com/pytorch/test-infra/wiki/Alerts",
    }


def test_resolved_fixture() -> None:
    note = parse_grafana(RESOLVED)
    assert note.status == "resolved"
    (alert,) = note.alerts
    assert alert.status == "resolved"
    assert alert.fingerprint == parse_grafana(FIRING).alerts[0].fingerprint
    assert alert.ends_at == datetime(2025, 12, 9, 21, 4, tzinfo=UTC)
    assert alert.reason == "Failure_Threshold=1, Number_of_Jobs_Failing=0"


def _alert(**changes: Any) -> dict[str, Any]:
    """The firing fixture with its single alert changed (``None`` deletes a key)."""
    payload = copy.deepcopy(FIRING)
    alert = payload["alerts"][0]
    for key, value in changes.items():
        if value is None:
            alert.pop(key, None)
        else:
            alert[key] = value
    return payload


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("P2", "P2"),
        ("p2", "P2"),
        (" P0 ", "P0"),
        ("2", "P2"),
        (2, "P2"),
        (3, "P3"),
        ("P4", None),
        (4, None),
        (-1, None),
        ("high", None),
        ("", None),
        (None, None),
        (True, None),
        (2.0, None),
        ("PP2", None),
    ],
)
def test_normalise_priority(value: Any, expected: str | None) -> None:
    assert normalise_priority(value) == expected


def test_priority_from_annotation_in_any_spelling() -> None:
    payload = _alert(annotations={**FIRING["alerts"][0]["annotations"], "Priority": "p1"})
    assert parse_grafana(payload).alerts[0].priority == "P1"
    payload = _alert(annotations={"Teams": "x"})
    assert parse_grafana(payload).alerts[0].priority is None


def test_comma_separated_teams() -> None:
    payload = _alert(annotations={"Teams": "broken-inductor, rocm ,,oncall"})
    assert parse_grafana(payload).alerts[0].team == ("broken-inductor", "rocm", "oncall")


def test_title_falls_back_to_alertname() -> None:
    payload = _alert(labels={"alertname": "Only alertname"})
    assert parse_grafana(payload).alerts[0].title == "Only alertname"


def test_reason_from_value_string_when_values_missing() -> None:
    payload = _alert(values=None)
    alert = parse_grafana(payload).alerts[0]
    assert alert.values == {}
    assert alert.reason == "Failure_Threshold=1, Number_of_Jobs_Failing=1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ var='A' labels={} value=1 ], [ var='B' labels={job=x, k=v} value=0.5 ]", "A=1, B=0.5"),
        ("[ metric='cpu' labels={} value=3 ]", "cpu=3"),
        ('[ var="C" labels={} value=2 ]', "C=2"),
        ("[ var=D labels={} value=7 ]", "D=7"),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_reason_from_value_string(text: str, expected: str) -> None:
    assert reason_from_value_string(text) == expected


def test_reason_from_values_keeps_order_and_trims_float_zeros() -> None:
    assert reason_from_values({"Z": 1.0, "A": 0.25, "M": 3}) == "Z=1, A=0.25, M=3"


def test_links_omit_empty_and_fall_back_to_panel_for_dashboard() -> None:
    payload = _alert(dashboardURL="", silenceURL=None, generatorURL=None, annotations={})
    links = parse_grafana(payload).alerts[0].links
    assert links == {
        "dashboard": FIRING["alerts"][0]["panelURL"],
        "panel": FIRING["alerts"][0]["panelURL"],
    }


def test_minimal_payload() -> None:
    note = parse_grafana(
        {"status": "resolved", "alerts": [{"status": "resolved", "fingerprint": "f"}]}
    )
    assert note.group_key == ""
    assert note.external_url is None
    (alert,) = note.alerts
    assert (alert.title, alert.team, alert.priority, alert.reason) == ("", (), None, "")
    assert (alert.links, alert.starts_at, alert.ends_at) == ({}, None, None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "payload"),
        ({"alerts": []}, "status"),
        ({"status": "pending", "alerts": []}, "status"),
        ({"status": "firing"}, "alerts"),
        ({"status": "firing", "alerts": {}}, "alerts"),
        ({"status": "firing", "alerts": ["x"]}, "alerts[0]"),
        (_alert(fingerprint=None), "alerts[0].fingerprint"),
        (_alert(status="alerting"), "alerts[0].status"),
        (_alert(labels=["a"]), "alerts[0].labels"),
        (_alert(values=[1, 2]), "alerts[0].values"),
        (_alert(startsAt="Dec 9, 9:29am PST"), "alerts[0].startsAt"),
        (_alert(generatorURL=5), "alerts[0].generatorURL"),
    ],
)
def test_malformed_payload_names_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PayloadError, match="^" + re.escape(field) + ":"):
        parse_grafana(payload)
