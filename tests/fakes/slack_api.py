"""A fake Slack Web API on 127.0.0.1 for tests: spec-checked calls, channel state, fault injection.

Point ``slack_sdk.WebClient(token="xoxb-test", base_url=fake.url + "/api/")`` at it.
"""

from __future__ import annotations

import contextlib
import email
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.support.slack_spec import required_arguments

SPEC_ENV = "SLACK_OPENAPI_SPEC"
# method names and required arguments, derived from Slack's published OpenAPI spec
# (tests/support/slack_spec.py says where from and how to refresh it)
DEFAULT_SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures/slack/web_api_methods.json"

# Parameters that slack_sdk (and Slack) accept as JSON text inside form data.
_JSON_FIELDS = ("blocks", "attachments", "metadata", "view")
_PERMALINK_HOST = "https://fake-slack.example"
_MAX_TEXT = 40_000

JsonDict = dict[str, Any]


class Call(NamedTuple):
    """One request as the fake received it; ``at`` is ``time.monotonic()`` so gaps are exact."""

    method: str
    params: JsonDict
    at: float


@dataclass(frozen=True, slots=True)
class Violation:
    """A call Slack itself would reject as malformed: the thing tests assert never happens."""

    method: str
    problem: str
    params: JsonDict


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do instead of (or on top of) a normal answer.

    ``delay`` sleeps first and then answers (normally, or with the other settings);
    ``drop`` stores the effect of the call and then closes the connection without an
    answer, which is how a crash between "Slack accepted the post" and "the bot saw
    the ts" looks from the client's side.
    """

    status: int | None = None
    retry_after: int | None = None
    error: str | None = None
    delay: float = 0.0
    drop: bool = False


class _Answer(NamedTuple):
    status: int
    body: JsonDict | None  # None: close the connection without answering
    headers: Mapping[str, str]


class _ApiError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": ...}`` with HTTP 200."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@functools.cache
def load_spec(path: str) -> Mapping[str, frozenset[str]]:
    """Method name -> its required parameters, read once per path.

    Reads either the trimmed ``web_api_methods.json`` the repository keeps
    (``{"methods": {name: [required, ...]}}``) or Slack's full OpenAPI spec
    (``{"paths": ...}``), so a newer spec can be tried without deriving it first.
    """
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    methods = spec["methods"] if "methods" in spec else required_arguments(spec)
    return {name: frozenset(required) for name, required in methods.items()}


def spec_path() -> Path:
    """Where the spec is: ``$SLACK_OPENAPI_SPEC`` if set, else the repository's derived copy."""
    override = os.environ.get(SPEC_ENV)
    return Path(override) if override else DEFAULT_SPEC_PATH


def _flag(value: Any) -> bool:
    """Slack booleans arrive as true/"true"/"1" depending on the encoding."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _ts_value(ts: Any) -> float:
    try:
        return float(ts)
    except (TypeError, ValueError):
        return 0.0


def block_problems(blocks: Any, *, max_blocks: int = 50) -> list[str]:
    """Block Kit limits Slack enforces with ``invalid_blocks``; the bot must never hit them."""
    if not isinstance(blocks, list):
        return ["blocks is not a list"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks > {max_blocks}")
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            problems.append(f"block {index} has no type")
            continue
        kind = block["type"]
        text = block.get("text")
        text_value = text.get("text", "") if isinstance(text, dict) else ""
        if kind == "section":
            if len(text_value) > 3000:
                problems.append(f"block {index}: section text {len(text_value)} > 3000")
            fields = block.get("fields") or []
            if len(fields) > 10:
                problems.append(f"block {index}: {len(fields)} fields > 10")
            problems.extend(
                f"block {index}: field text > 2000"
                for field in fields
                if len(field.get("text", "")) > 2000
            )
        elif kind == "header" and len(text_value) > 150:
            problems.append(f"block {index}: header text > 150")
        elif kind == "context" and len(block.get("elements") or []) > 10:
            problems.append(f"block {index}: context has > 10 elements")
        elif kind == "actions" and len(block.get("elements") or []) > 25:
            problems.append(f"block {index}: actions has > 25 elements")
        _element_problems(block, f"block {index}", problems)
    return problems


def _element_problems(node: Any, where: str, problems: list[str]) -> None:
    """Walk every nested element: ids, button texts, values and option sizes."""
    if isinstance(node, list):
        for item in node:
            _element_problems(item, where, problems)
        return
    if not isinstance(node, dict):
        return
    for key in ("block_id", "action_id"):
        if len(str(node.get(key, ""))) > 255:
            problems.append(f"{where}: {key} > 255")
    if node.get("type") == "button":
        if len(node.get("text", {}).get("text", "")) > 75:
            problems.append(f"{where}: button text > 75")
        if len(str(node.get("value", ""))) > 2000:
            problems.append(f"{where}: button value > 2000")
    for option in node.get("options") or []:
        if isinstance(option, dict):
            if len(option.get("text", {}).get("text", "")) > 75:
                problems.append(f"{where}: option text > 75")
            if len(str(option.get("value", ""))) > 150:
                problems.append(f"{where}: option value > 150")
    for value in node.values():
        if isinstance(value, dict | list):
            _element_problems(value, where, problems)


class FakeSlack:
    """The fake server and the state a Slack workspace would hold for the bot.

    All state lives behind one condition variable so that tests can ``wait_for`` a
    predicate instead of sleeping, while the server answers on its own threads.
    """

    def __init__(
        self,
        *,
        spec: Path | str | None = None,
        users: Iterable[Mapping[str, Any]] = (),
        usergroups: Mapping[str, Sequence[str]] | None = None,
        usergroup_handles: Mapping[str, str] | None = None,
        channels: Iterable[str] | None = None,
        extra_methods: Iterable[str] = (),
        start_ts: float | None = None,
        min_post_interval: float | None = None,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "TFAKE",
    ) -> None:
        """Configure the workspace.

        ``channels``: if given, other channel ids answer ``channel_not_found``.
        ``start_ts``: deterministic message timestamps counting up from it (100 us
        apart); by default they follow the wall clock, as Slack's do, which keeps
        ``oldest=`` queries computed from ``time.time()`` meaningful.
        ``min_post_interval``: if set, a ``chat.postMessage`` to the same channel
        sooner than this answers 429 (Slack allows about one post per second).
        ``extra_methods``: methods newer than the 2021 spec to accept.
        """
        self._methods = dict(load_spec(str(spec or spec_path())))
        for method in extra_methods:
            self._methods.setdefault(method, frozenset())
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._known_channels = set(channels) if channels is not None else None
        self._start_us = int(start_ts * 1_000_000) if start_ts is not None else None
        self._min_post_interval = min_post_interval
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self._users: dict[str, JsonDict] = {}
        for user in users:
            self.add_user(**user)
        self._usergroups = {k: list(v) for k, v in (usergroups or {}).items()}
        self._usergroup_handles = dict(usergroup_handles or {})
        self._clear_state()

    # ----------------------------------------------------------------- lifecycle

    def _clear_state(self) -> None:
        self._calls: list[Call] = []
        self._violations: list[Violation] = []
        self._faults: dict[str, list[Fault]] = {}
        self._outage: tuple[frozenset[str] | None, Fault] | None = None
        self._channels: dict[str, list[JsonDict]] = {}
        self._ephemerals: list[JsonDict] = []
        self._home_views: dict[str, JsonDict] = {}
        self._opened_views: list[JsonDict] = []
        self._responses: list[JsonDict] = []
        self._last_post_at: dict[str, float] = {}
        self._last_ts_us = self._start_us if self._start_us is not None else 0
        self._view_counter = 0

    def start(self) -> FakeSlack:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-slack", kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed answers still in flight are cut short."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; the Web API lives under ``/api/``."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget calls, messages, views, faults and violations; keep users and config."""
        with self._cond:
            self._clear_state()
            self._cond.notify_all()

    # ------------------------------------------------------------ configuration

    def add_user(
        self,
        id: str,  # noqa: A002 - Slack's own field name
        name: str,
        *,
        email: str | None = None,
        real_name: str | None = None,
        tz: str = "Etc/UTC",
        is_bot: bool = False,
        deleted: bool = False,
    ) -> None:
        """Make ``users.info`` / ``users.lookupByEmail`` know a user, in Slack's shape."""
        with self._cond:
            self._users[id] = {
                "id": id,
                "team_id": self.team_id,
                "name": name,
                "real_name": real_name or name,
                "deleted": deleted,
                "is_bot": is_bot,
                "tz": tz,
                "profile": {
                    "real_name": real_name or name,
                    "display_name": name,
                    **({"email": email} if email else {}),
                },
            }

    def add_usergroup(self, group_id: str, user_ids: Sequence[str]) -> None:
        with self._cond:
            self._usergroups[group_id] = list(user_ids)

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        error: str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
    ) -> None:
        """Queue a fault for the next ``times`` calls of ``method`` (FIFO, each used once).

        ``status=429`` answers ``ratelimited`` with ``Retry-After`` (default 1 s);
        other statuses answer that HTTP status; ``error`` answers HTTP 200 with
        ``ok: false``; ``delay`` sleeps before answering; ``drop`` accepts then drops.
        """
        if status is None and error is None and not delay and not drop:
            raise ValueError("a fault needs status, error, delay or drop")
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(status=status, retry_after=retry_after, error=error, delay=delay, drop=drop)
        with self._cond:
            self._faults.setdefault(method, []).extend([fault] * times)

    def accept_then_drop(self, method: str = "chat.postMessage") -> None:
        """Shorthand for ``fail_next(method, drop=True)``."""
        self.fail_next(method, drop=True)

    def set_outage(
        self, methods: Iterable[str] | None, *, status: int = 503, error: str | None = None
    ) -> None:
        """Make ``methods`` (``None``: every method) fail on every call until cleared.

        With ``error`` the failure is HTTP 200 ``ok: false`` instead of ``status``.
        """
        fault = Fault(status=None if error else status, error=error)
        if fault.status == 429:
            fault = Fault(status=429, retry_after=1)
        scope = frozenset(methods) if methods is not None else None
        with self._cond:
            self._outage = (scope, fault)

    def clear_outage(self) -> None:
        with self._cond:
            self._outage = None

    # -------------------------------------------------------------- inspection

    @property
    def calls(self) -> list[Call]:
        """Every request received, in arrival order (a snapshot)."""
        with self._cond:
            return list(self._calls)

    @property
    def violations(self) -> list[Violation]:
        """Calls Slack would reject as malformed; tests should assert this is empty."""
        with self._cond:
            return list(self._violations)

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [call for call in self._calls if call.method == method]

    def messages(self, channel: str) -> list[JsonDict]:
        """Top-level messages of ``channel``, oldest first, metadata included."""
        with self._cond:
            return [_copy(m) for m in self._channels.get(channel, []) if _is_top(m)]

    def replies(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """Thread replies under ``thread_ts`` (without the parent), oldest first."""
        with self._cond:
            return [
                _copy(m)
                for m in self._channels.get(channel, [])
                if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
            ]

    def message(self, channel: str, ts: str) -> JsonDict | None:
        with self._cond:
            found = self._find(channel, ts)
            return _copy(found) if found else None

    def ephemerals(self, channel: str | None = None) -> list[JsonDict]:
        with self._cond:
            return [dict(e) for e in self._ephemerals if channel in (None, e["channel"])]

    def home_view(self, user_id: str) -> JsonDict | None:
        """The App Home view last published for ``user_id``."""
        with self._cond:
            view = self._home_views.get(user_id)
            return _copy(view) if view else None

    @property
    def opened_views(self) -> list[JsonDict]:
        """Modals opened with ``views.open``, in order, each with its ``trigger_id``."""
        with self._cond:
            return [_copy(v) for v in self._opened_views]

    def response_url(self, key: str) -> str:
        """A ``response_url`` for an interaction; what the bot posts there is kept by key."""
        return f"{self.url}/respond/{key}"

    def responses(self, key: str | None = None) -> list[JsonDict]:
        """Messages posted to ``response_url(key)`` (all keys when None), oldest first."""
        with self._cond:
            return [_copy(r) for r in self._responses if key in (None, r["key"])]

    def _record_response(self, key: str, body: bytes) -> None:
        try:
            message = json.loads(body or b"{}")
        except ValueError:
            message = {"unparsed": body.decode("utf-8", "replace")}
        with self._cond:
            self._responses.append({"key": key, **message})
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every change); return its value.

        The default deadline is generous because it only matters when a test fails: a busy
        2-core CI machine can take several seconds to start a bot and post its first message.

        Raises ``TimeoutError`` rather than returning False, so a forgotten
        ``assert`` cannot turn a failed wait into a passing test.
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"condition not met within {timeout} s")
        return result

    # --------------------------------------------------------------- requests

    def _handle(self, method: str, params: JsonDict, token: str | None) -> _Answer:
        """Record, validate, apply faults, then run the method: the order Slack's side implies."""
        with self._cond:
            self._calls.append(Call(method, _copy(params), time.monotonic()))
            self._cond.notify_all()
            if method not in self._methods:
                self._violate(method, "unknown method", params)
                return _ok_false("unknown_method")
            missing = sorted(p for p in self._methods[method] if p not in params)
            if missing:
                self._violate(method, f"missing required {', '.join(missing)}", params)
            fault = self._take_fault(method)
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.status is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
            error = "ratelimited" if fault.status == 429 else f"http_{fault.status}"
            return _Answer(fault.status, {"ok": False, "error": error}, headers)
        if not token:
            return _ok_false("not_authed")
        if not token.startswith("xox"):
            return _ok_false("invalid_auth")
        if missing:
            return _ok_false("invalid_arguments")
        if fault.error:
            return _ok_false(fault.error)
        with self._cond:
            answer = self._run(method, params)
            self._cond.notify_all()
        if fault.drop:
            return _Answer(answer.status, None, {})
        return answer

    def _violate(self, method: str, problem: str, params: JsonDict) -> None:
        self._violations.append(Violation(method, problem, _copy(params)))

    def _take_fault(self, method: str) -> Fault:
        queue = self._faults.get(method)
        if queue:
            return queue.pop(0)
        if self._outage is not None:
            scope, fault = self._outage
            if scope is None or method in scope:
                return fault
        return Fault()

    def _run(self, method: str, params: JsonDict) -> _Answer:
        handler = _METHODS.get(method)
        if handler is None:
            return _ok_false("fake_not_implemented")
        try:
            body = handler(self, params)
        except _ApiError as e:
            if e.error in ("invalid_blocks", "invalid_arguments"):
                self._violate(method, e.error, params)
            return _ok_false(e.error)
        except _RateLimited:
            return _Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
        return _Answer(200, {"ok": True, **body}, {})

    # -------------------------------------------------------- state primitives

    def _next_ts(self) -> str:
        """Unique, strictly increasing ``seconds.micros`` strings, like Slack's."""
        if self._start_us is not None:
            us = self._last_ts_us + 100
        else:
            us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _channel(self, params: JsonDict, key: str = "channel") -> list[JsonDict]:
        channel = str(params.get(key) or "")
        if not channel or (
            self._known_channels is not None and channel not in self._known_channels
        ):
            raise _ApiError("channel_not_found")
        return self._channels.setdefault(channel, [])

    def _find(self, channel: str, ts: str) -> JsonDict | None:
        for message in self._channels.get(channel, []):
            if message["ts"] == ts:
                return message
        return None

    def _content(self, params: JsonDict, *, require: bool) -> JsonDict:
        """Text/blocks/attachments/metadata of a post, checked as Slack checks them."""
        content: JsonDict = {}
        if "text" in params and params["text"] is not None:
            content["text"] = str(params["text"])
            if len(content["text"]) > _MAX_TEXT:
                raise _ApiError("msg_too_long")
        for key in ("blocks", "attachments"):
            if params.get(key) not in (None, ""):
                content[key] = params[key]
        if "blocks" in content and block_problems(content["blocks"]):
            raise _ApiError("invalid_blocks")
        metadata = params.get("metadata")
        if metadata not in (None, ""):
            if not isinstance(metadata, dict) or "event_type" not in metadata:
                raise _ApiError("invalid_metadata_format")
            content["metadata"] = {
                "event_type": metadata["event_type"],
                "event_payload": metadata.get("event_payload", {}),
            }
        if require and not ({"text", "blocks", "attachments"} & content.keys()):
            raise _ApiError("no_text")
        return content

    # --------------------------------------------------------- method handlers

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        messages = self._channel(params)
        channel = str(params["channel"])
        content = self._content(params, require=True)
        if self._min_post_interval is not None:
            now = time.monotonic()
            last = self._last_post_at.get(channel)
            if last is not None and now - last < self._min_post_interval:
                raise _RateLimited
            self._last_post_at[channel] = now
        message: JsonDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": "",
            **content,
        }
        thread_ts = params.get("thread_ts")
        parent = None
        if thread_ts:
            parent = self._find(channel, str(thread_ts))
            if parent is None:
                raise _ApiError("thread_not_found")
            parent_ts = parent.get("thread_ts", parent["ts"])
            parent = self._find(channel, parent_ts) or parent
        message["ts"] = self._next_ts()
        if parent is not None:
            message["thread_ts"] = parent["ts"]
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = message["ts"]
        messages.append(message)
        return {"channel": channel, "ts": message["ts"], "message": _copy(message)}

    def _chat_update(self, params: JsonDict) -> JsonDict:
        self._channel(params)
        channel = str(params["channel"])
        message = self._find(channel, str(params["ts"]))
        if message is None:
            raise _ApiError("message_not_found")
        message.update(self._content(params, require=False))
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": _copy(message),
        }

    def _chat_delete(self, params: JsonDict) -> JsonDict:
        messages = self._channel(params)
        ts = str(params.get("ts") or "")
        message = self._find(str(params["channel"]), ts)
        if message is None:
            raise _ApiError("message_not_found")
        messages.remove(message)
        return {"channel": params["channel"], "ts": ts}

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        self._channel(params)
        content = self._content(params, require=True)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": params["channel"],
                "user": params["user"],
                "thread_ts": params.get("thread_ts"),
                "message_ts": ts,
                **content,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, params: JsonDict) -> JsonDict:
        self._channel(params)
        channel = str(params["channel"])
        message = self._find(channel, str(params["message_ts"]))
        if message is None:
            raise _ApiError("message_not_found")
        link = f"{_PERMALINK_HOST}/archives/{channel}/p{message['ts'].replace('.', '')}"
        if not _is_top(message):
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _conversations_history(self, params: JsonDict) -> JsonDict:
        messages = self._channel(params)
        tops = [m for m in messages if _is_top(m)]
        return self._page(list(reversed(tops)), params)

    def _conversations_replies(self, params: JsonDict) -> JsonDict:
        messages = self._channel(params)
        ts = str(params.get("ts") or "")
        found = self._find(str(params["channel"]), ts)
        if found is None:
            raise _ApiError("thread_not_found")
        root = found.get("thread_ts", found["ts"])
        thread = [m for m in messages if m["ts"] == root or m.get("thread_ts") == root]
        return self._page(thread, params)

    def _page(self, ordered: list[JsonDict], params: JsonDict) -> JsonDict:
        """Filter by oldest/latest, then cut pages of ``limit`` with an offset cursor."""
        inclusive = _flag(params.get("inclusive", False))
        oldest = _ts_value(params.get("oldest", 0))
        latest = _ts_value(params["latest"]) if params.get("latest") else float("inf")

        def inside(message: JsonDict) -> bool:
            ts = _ts_value(message["ts"])
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        selected = [m for m in ordered if inside(m)]
        cursor = str(params.get("cursor") or "")
        try:
            start = int(cursor.removeprefix("offset:")) if cursor else 0
        except ValueError as e:
            raise _ApiError("invalid_cursor") from e
        limit = max(1, min(int(params.get("limit") or 100), 999))
        page = selected[start : start + limit]
        with_metadata = _flag(params.get("include_all_metadata", False))
        out = []
        for message in page:
            shown = _copy(message)
            if not with_metadata:
                shown.pop("metadata", None)
            out.append(shown)
        more = start + limit < len(selected)
        return {
            "messages": out,
            "has_more": more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }

    def _views_publish(self, params: JsonDict) -> JsonDict:
        view = self._view(params, expected="home")
        self._home_views[str(params["user_id"])] = view
        return {"view": _copy(view)}

    def _views_open(self, params: JsonDict) -> JsonDict:
        view = self._view(params, expected="modal")
        self._opened_views.append({**view, "trigger_id": params["trigger_id"]})
        return {"view": _copy(view)}

    def _view(self, params: JsonDict, *, expected: str) -> JsonDict:
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") != expected:
            raise _ApiError("invalid_arguments")
        if block_problems(view.get("blocks", []), max_blocks=100):
            raise _ApiError("invalid_blocks")
        self._view_counter += 1
        return {**_copy(view), "id": f"VFAKE{self._view_counter:04d}", "team_id": self.team_id}

    def _users_info(self, params: JsonDict) -> JsonDict:
        user = self._users.get(str(params.get("user") or ""))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": _copy(user)}

    def _users_lookup_by_email(self, params: JsonDict) -> JsonDict:
        wanted = str(params["email"]).lower()
        for user in self._users.values():
            if str(user["profile"].get("email", "")).lower() == wanted:
                return {"user": _copy(user)}
        raise _ApiError("users_not_found")

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": f"{_PERMALINK_HOST}/",
            "team": "Fake Workspace",
            "user": "inductor-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _usergroups_list(self, params: JsonDict) -> JsonDict:
        groups = set(self._usergroups) | set(self._usergroup_handles)
        return {"usergroups": [
            {"id": g, "team_id": self.team_id, "name": g,
             "handle": self._usergroup_handles.get(g, g.lower())} for g in sorted(groups)]}

    def _usergroups_users_list(self, params: JsonDict) -> JsonDict:
        users = self._usergroups.get(str(params["usergroup"]))
        if users is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(users)}


class _RateLimited(Exception):
    """Raised by a handler when the simulated per-channel post rate is exceeded."""


_METHODS: dict[str, Callable[[FakeSlack, JsonDict], JsonDict]] = {
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.update": FakeSlack._chat_update,
    "chat.delete": FakeSlack._chat_delete,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.getPermalink": FakeSlack._chat_get_permalink,
    "conversations.history": FakeSlack._conversations_history,
    "conversations.replies": FakeSlack._conversations_replies,
    "views.publish": FakeSlack._views_publish,
    "views.open": FakeSlack._views_open,
    "users.info": FakeSlack._users_info,
    "users.lookupByEmail": FakeSlack._users_lookup_by_email,
    "auth.test": FakeSlack._auth_test,
    "usergroups.users.list": FakeSlack._usergroups_users_list,
    "usergroups.list": FakeSlack._usergroups_list,
}


def _copy(value: Any) -> Any:
    """Deep copy of JSON-shaped data, so callers can never mutate the fake's state."""
    return json.loads(json.dumps(value))


def _is_top(message: JsonDict) -> bool:
    """A channel-level message (a thread parent or a lone post), not a reply."""
    return message.get("thread_ts", message["ts"]) == message["ts"]


def _ok_false(error: str) -> _Answer:
    return _Answer(200, {"ok": False, "error": error}, {})


def parse_params(content_type: str, body: bytes, query: str) -> JsonDict:
    """Merge query-string and body parameters; decode JSON carried inside form fields.

    slack_sdk sends JSON bodies for chat.* and views.*, query strings or form data
    for the rest, and callers of ``api_call(params=...)`` may pass ``blocks`` as a
    JSON string; Slack accepts all of these, so the fake does too.
    """
    params: JsonDict = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    kind = content_type.split(";")[0].strip().lower()
    if body:
        if kind == "application/json":
            decoded = json.loads(body)
            if not isinstance(decoded, dict):
                raise ValueError("JSON body is not an object")
            params.update(decoded)
        elif kind == "multipart/form-data":
            message = email.message_from_bytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
            )
            for part in message.get_payload():  # type: ignore[union-attr]
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                params[str(name)] = payload.decode("utf-8", "replace")
        else:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
    for key in _JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            # Undecodable text stays text: the method then reports it as malformed.
            with contextlib.suppress(json.JSONDecodeError):
                params[key] = json.loads(value)
    return params


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying the fake its handlers answer for."""

    daemon_threads = True
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    """Translates HTTP to ``FakeSlack._handle`` and back; no state of its own."""

    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence per-request stderr lines; ``fake.calls`` is the record."""

    def _dispatch(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # the client died mid-request (a SIGKILLed bot): Slack never sees a call it did
            # not fully receive, so neither does the fake, and there is nobody to answer
            self.close_connection = True
            return
        if parts.path.startswith("/respond/"):
            # response_url posts (Bolt's respond()) answer a bare "ok", as Slack does
            fake._record_response(parts.path.removeprefix("/respond/"), body)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        if not parts.path.startswith("/api/"):
            self._reply(_Answer(404, {"ok": False, "error": "not_found"}, {}))
            return
        method = parts.path.removeprefix("/api/")
        try:
            params = parse_params(self.headers.get("Content-Type", ""), body, parts.query)
        except (ValueError, UnicodeDecodeError):
            self._reply(_ok_false("invalid_json"))
            return
        token = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        body_token = params.pop("token", None)
        token = token or (str(body_token) if body_token else None)
        self._reply(fake._handle(method, params, token))

    def _reply(self, answer: _Answer) -> None:
        if answer.body is None:
            self.close_connection = True  # accepted, then the line goes dead
            return
        payload = json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client died waiting: the call stands, as in Slack
