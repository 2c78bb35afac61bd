"""Key lines of a failed job's log: failed test ids, exceptions with their innermost frame, errors.

Pure text in, plain data out. ``extract`` reads the tail of a GitHub Actions log (or
the lines HUD's classifier kept) and keeps what a sheriff looks for first; see
``EVIDENCE.md`` beside this file for the rules in prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

MAX_LINES = 8  # key lines kept per job: the alert shows one, `show` a few
MAX_TESTS = 50  # failed test ids kept (the count is exact)
MAX_FILES = 20  # files named, most telling first
LINE_CHARS = 400  # a kept line is cut here: enough for a test id and its message

# GitHub prefixes every log line with its time: "2025-12-09T12:00:00.1234567Z "
_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")

# pytest's summary: "FAILED [0.12s] inductor/test_x.py::Cls::test_y - RuntimeError: boom"
_PYTEST_SUMMARY = re.compile(
    r"^(?P<what>FAILED|ERROR)\s+(?:\[[\d.]+m?s\]\s+)?(?P<test>[^\s]+?\.py(?:::[^\s]+)?)"
    r"(?:\s+-\s+(?P<message>.*))?$")
# pytest -v progress: "inductor/test_x.py::Cls::test_y FAILED [ 10%]"
_PYTEST_PROGRESS = re.compile(
    r"^(?P<test>[^\s]+?\.py::[^\s]+)\s+(?P<what>FAILED|ERROR)\b")
# unittest: "FAIL: test_y (__main__.Cls.test_y)" / "ERROR: test_y (inductor.test_x.Cls)"
_UNITTEST = re.compile(r"^(?P<what>FAIL|ERROR): (?P<name>\w+) \((?P<where>[\w.]+)\)")
# PyTorch's run_test.py: "inductor/test_torchinductor 2/2 failed!"
_RUN_TEST = re.compile(r"^(?P<file>[\w/.-]+?) \d+/\d+ failed!")

_TRACEBACK = re.compile(r"^\s*Traceback \(most recent call last\):")
_PY_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+)')
# pytest's own traceback frames: "torch/_inductor/scheduler.py:123: in codegen"
_PYTEST_FRAME = re.compile(r"^(?P<file>[^\s:]+\.py):(?P<line>\d+): (?:in \S+|\w+)")
_PYTEST_E = re.compile(r"^E\s{2,}(?P<text>\S.*)$")
# "torch._dynamo.exc.BackendCompilerFailed: ..." or "RuntimeError: ..." or "KeyboardInterrupt"
_EXCEPTION = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure|Failed"
    r"|Warning|Fault|Timeout))(?::\s*(?P<message>.*))?$")
# after a traceback's frames any "Name: message" line is the exception, whatever its name
_RAISED = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?::\s.*|:?)$")
_CHAIN = re.compile(r"^(During handling of the above exception|The above exception was the "
                    r"direct cause)")

_ANNOTATION = re.compile(r"^##\[error\]\s*(?P<text>.*)$")
_EXIT_CODE = re.compile(r"^Process completed with exit code \d+\.?$")
# gcc/clang/nvcc: "aten/src/ATen/native/Foo.cpp:12:5: error: ..."
_COMPILER = re.compile(r"^(?P<file>[^\s:]+\.(?:c|cc|cpp|cu|cuh|h|hpp|cxx|py|pyi)):"
                       r"(?P<line>\d+)(?::\d+)?: (?:fatal )?error:? ")
_ERROR_LINE = re.compile(
    r"^(?:error: |ERROR: |FAILED: |fatal: |make(?:\[\d+\])?: \*\*\* |Segmentation fault"
    r"|Fatal Python error|.*\bcore dumped\b|Killed$|.*\bregressed\b)")
_MODULE_IN_TEXT = re.compile(r"(?:from |module |No module named )'?(?P<module>[a-z_][\w]*"
                             r"(?:\.[a-z_]\w*)+)'?")


class LineKind(IntEnum):
    """What a key line is; the lower the value, the more it tells (the headline is the lowest)."""

    TEST = 1  # a failed test: the id and, when pytest gave it, the error
    EXCEPTION = 2  # a Python exception, with its innermost frame's file when a traceback showed
    BUILD = 3  # a compiler error with its source file
    ERROR = 4  # another error line (pip, ninja, git, a crash, an accuracy regression)
    ANNOTATION = 5  # a GitHub ##[error] annotation
    EXIT = 6  # "Process completed with exit code 1.": says only that something failed
    REPORTED = 7  # a line a source reported that matches nothing above (HUD's own pick)


@dataclass(frozen=True, slots=True)
class KeyLine:
    """One line worth showing. ``text`` is cleaned (no timestamp, no colours) and cut.

    ``test`` is the failed test id (``inductor/test_x.py::Cls::test_y``); ``file`` the
    innermost traceback frame's file for an exception, the test's file for a test, the
    source file for a compiler error. ``frames`` are every traceback file, outermost first.
    """

    kind: LineKind
    text: str
    test: str | None = None
    file: str | None = None
    frames: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FailureLines:
    """What one failed job's log says, most telling line first.

    ``tests`` are failed test ids (at most ``MAX_TESTS``; ``test_count`` is exact).
    ``files`` are the files the lines name: innermost frames and compiler errors first,
    then test files, then outer frames. ``modules`` are dotted modules named in errors
    (``torch._inductor.codecache`` from an ImportError).
    """

    lines: tuple[KeyLine, ...] = ()
    tests: tuple[str, ...] = ()
    test_count: int = 0
    files: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()

    @property
    def headline(self) -> KeyLine | None:
        return self.lines[0] if self.lines else None

    @property
    def tests_failed(self) -> bool:
        """Tests ran and failed (test ids, or a test file reported failed)."""
        return any(line.kind is LineKind.TEST for line in self.lines) or self.test_count > 0

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines)


def clean(line: str) -> str:
    """One raw log line without GitHub's timestamp, colours, trailing space and CR."""
    return _ANSI.sub("", _TIMESTAMP.sub("", line, count=1)).rstrip("\r\n\t ")


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def test_file(test_id: str) -> str:
    """The file of a pytest id: ``inductor/test_x.py::Cls::test_y`` -> ``inductor/test_x.py``."""
    return test_id.split("::", 1)[0]


def _module_file(dotted: str, name: str) -> str:
    """``inductor.test_x.Cls.test_y`` (a unittest location) -> ``inductor/test_x.py``,
    dropping the test's own name and class names; ``__main__`` locations name no file."""
    parts = dotted.split(".")
    if parts and parts[-1] == name:
        parts.pop()
    while parts and parts[-1][:1].isupper():
        parts.pop()
    if not parts or parts == ["__main__"]:
        return ""
    return "/".join(parts) + ".py"


class _Scan:
    """The scanner's state while walking the lines once, oldest first."""

    def __init__(self) -> None:
        self.found: list[KeyLine] = []
        self.tests: list[str] = []
        self.test_count = 0
        self.seen_tests: set[str] = set()
        self.frames: list[str] = []  # frames of the traceback being read
        self.in_traceback = False
        self.pytest_frames: list[str] = []  # pytest-style frames since the last E line

    def add(self, line: KeyLine) -> None:
        self.found.append(line)

    def test(self, test_id: str, text: str) -> None:
        if test_id in self.seen_tests:
            # pytest names a failure twice (progress line and summary): keep the fuller one
            if " - " in text:
                self.found = [k for k in self.found if k.test != test_id]
                self.add(KeyLine(LineKind.TEST, _cut(text), test_id, test_file(test_id)))
            return
        self.seen_tests.add(test_id)
        self.test_count += 1
        if len(self.tests) < MAX_TESTS:
            self.tests.append(test_id)
        self.add(KeyLine(LineKind.TEST, _cut(text), test_id, test_file(test_id)))


def extract(text: str | Iterable[str]) -> FailureLines:
    """The key lines of a log (its text, or its lines), most telling first.

    Kept: pytest ``FAILED``/``ERROR`` ids (summary and ``-v`` progress lines), unittest
    ``FAIL:``/``ERROR:`` lines, run_test's ``N/M failed!``; each Python traceback's last
    line with its innermost frame's file (also pytest's ``E`` lines after its frames);
    compiler errors with their file; other error lines; ``##[error]`` annotations, the
    bare "exit code" one last. Identical texts are kept once; the earliest of a kind
    comes first within it. At most ``MAX_LINES`` lines.
    """
    lines = text.splitlines() if isinstance(text, str) else text
    scan = _Scan()
    for raw in lines:
        _scan_line(scan, clean(raw))
    return _summarise(scan)


def _scan_line(scan: _Scan, line: str) -> None:
    if not line.strip():
        return
    if scan.in_traceback:
        frame = _PY_FRAME.match(line)
        if frame:
            scan.frames.append(frame.group("file").replace("\\", "/"))
            return
        if line[:1].isspace():  # the source line under a frame, or a caret marker
            return
        scan.in_traceback = False
        if _RAISED.match(line):
            frames = tuple(scan.frames)
            scan.add(KeyLine(LineKind.EXCEPTION, _cut(line), None,
                             frames[-1] if frames else None, frames))
            scan.frames = []
            return
        scan.frames = []
    if _TRACEBACK.match(line):
        scan.in_traceback = True
        scan.frames = []
        return
    if _CHAIN.match(line):
        return
    if match := _PYTEST_SUMMARY.match(line):
        scan.test(match.group("test"), line)
        return
    if match := _PYTEST_PROGRESS.match(line):
        scan.test(match.group("test"), line)
        return
    if match := _UNITTEST.match(line):
        location = match.group("where")
        file = _module_file(location, match.group("name"))
        name = match.group("name")
        test_id = (f"{file}::{name}" if file
                   else location if location.endswith("." + name) else f"{location}.{name}")
        scan.test(test_id, line)
        return
    if match := _RUN_TEST.match(line):  # a whole test file failed (or crashed)
        name = match.group("file")
        scan.add(KeyLine(LineKind.TEST, _cut(line), None,
                         name if name.endswith(".py") else name + ".py"))
        return
    if match := _PYTEST_FRAME.match(line):
        scan.pytest_frames.append(match.group("file"))
        return
    if match := _PYTEST_E.match(line):
        body = match.group("text")
        if _EXCEPTION.match(body) and scan.pytest_frames:
            frames = tuple(scan.pytest_frames)
            scan.add(KeyLine(LineKind.EXCEPTION, _cut(body), None, frames[-1], frames))
            scan.pytest_frames = []
        return
    if match := _ANNOTATION.match(line):
        body = match.group("text")
        kind = LineKind.EXIT if _EXIT_CODE.match(body) else LineKind.ANNOTATION
        scan.add(KeyLine(kind, _cut(line)))
        return
    if match := _COMPILER.match(line):
        scan.add(KeyLine(LineKind.BUILD, _cut(line), None, match.group("file")))
        return
    if _EXCEPTION.match(line):  # an exception printed without a traceback
        scan.add(KeyLine(LineKind.EXCEPTION, _cut(line)))
        return
    if _ERROR_LINE.match(line):
        scan.add(KeyLine(LineKind.ERROR, _cut(line)))


def _summarise(scan: _Scan) -> FailureLines:
    # a test file's "N/M failed!" says less than the failed test ids it sums up
    if scan.tests:
        scan.found = [k for k in scan.found if not (k.kind is LineKind.TEST and k.test is None)]
    # the last exception of a chain is the one that ended the job: newest first within
    # exceptions; tests and errors keep log order (the first failure is the first shown)
    ordered = sorted(enumerate(scan.found),
                     key=lambda item: (item[1].kind,
                                       -item[0] if item[1].kind is LineKind.EXCEPTION
                                       else item[0]))
    kept: list[KeyLine] = []
    texts: set[str] = set()
    for _, line in ordered:
        if line.text in texts:
            continue
        texts.add(line.text)
        kept.append(line)
    return FailureLines(
        lines=tuple(kept[:MAX_LINES]),
        tests=tuple(scan.tests),
        test_count=scan.test_count,
        files=files_named(kept),
        modules=_modules(kept),
    )


def files_named(lines: Sequence[KeyLine]) -> tuple[str, ...]:
    """Named files, most telling first: innermost frames and compiler errors, then test
    files, then the outer frames (innermost of those first)."""
    first = [line.file for line in lines
             if line.file and line.kind in (LineKind.EXCEPTION, LineKind.BUILD)]
    tests = [line.file for line in lines if line.file and line.kind is LineKind.TEST]
    outer = [frame for line in lines for frame in reversed(line.frames[:-1])]
    return tuple(dict.fromkeys(f for f in (*first, *tests, *outer) if f))[:MAX_FILES]


def _modules(lines: Sequence[KeyLine]) -> tuple[str, ...]:
    found: list[str] = []
    for line in lines:
        if line.kind not in (LineKind.EXCEPTION, LineKind.ERROR, LineKind.TEST):
            continue
        found += [m.group("module") for m in _MODULE_IN_TEXT.finditer(line.text)]
    return tuple(dict.fromkeys(found))[:MAX_FILES]


def from_reported(lines: Sequence[str]) -> FailureLines:
    """Key lines from lines a source already picked (HUD's ``failureLines``/captures).

    They are scanned like a log; a reported line that matches no rule is still kept
    (as ``REPORTED``), since the source's classifier chose it for a reason.
    """
    found = extract(lines)
    kept = set(found.texts)
    extra = [KeyLine(LineKind.REPORTED, _cut(text)) for raw in lines
             if (text := clean(raw)).strip() and _cut(text) not in kept]
    if not extra:
        return found
    merged = tuple(dict.fromkeys((*found.lines, *extra)))[:MAX_LINES]
    return FailureLines(merged, found.tests, found.test_count, found.files, found.modules)
