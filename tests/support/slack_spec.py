"""Slack's Web API methods and their required arguments, derived from Slack's OpenAPI spec.

The fake Slack server (``tests/fakes/slack_api.py``) checks every call against the
method names and required arguments Slack documents. The full spec is ~1 MB, so the
repository keeps only those facts, derived by this module::

    python -m tests.support.slack_spec slack_web_openapi_v2_without_examples.json \
        > tests/fixtures/slack/web_api_methods.json

The spec is Slack's ``slack_web_openapi_v2_without_examples.json`` (Web API spec 1.7.0,
2021) from https://github.com/slackapi/slack-api-specs (``web-api/``). ``token`` is left
out of the required arguments: slack_sdk sends it in the Authorization header, and the
spec marks it required in some places and not in others.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def required_arguments(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Method name -> its required arguments, sorted, for every path in the spec."""
    methods: dict[str, list[str]] = {}
    for route, operations in spec.get("paths", {}).items():
        required: set[str] = set()
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param.get("required") and param.get("name") != "token":
                    required.add(param["name"])
        methods[route.lstrip("/")] = sorted(required)
    return dict(sorted(methods.items()))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.support.slack_spec SLACK_OPENAPI_SPEC.json "
              "> tests/fixtures/slack/web_api_methods.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    info = spec.get("info", {})
    out = {
        "source": "Slack Web API OpenAPI spec (slackapi/slack-api-specs, "
                  "web-api/slack_web_openapi_v2_without_examples.json), "
                  f"{info.get('title', 'Slack Web API')} {info.get('version', '?')}; "
                  "derived by tests/support/slack_spec.py",
        "methods": required_arguments(spec),
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
