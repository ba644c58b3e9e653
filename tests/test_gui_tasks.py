"""The background-operation helper: work runs off the GUI thread, outcomes come back on it, cancel and progress work.

Also checks the layer rule that makes the helper necessary: nothing under app/views (or app/gui.py) imports
SQLAlchemy; views reach the database only through services, called through the helper.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import text

from app.services import paging
from app.services.db import Database
from app.services.errors import DatabaseUnavailable, ValidationFailed
from app.services.interrupt import Interrupted
from app.views import qt_check
from app.views import tasks as tasks_module
from app.views.status_bar import OpsStatusBar
from app.views.tasks import TaskContext, TaskFailure, TaskRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tasks(qtbot: QtBot) -> Iterator[TaskRunner]:
    runner = TaskRunner(max_threads=2)
    yield runner
    runner.shutdown(5000)


def test_work_runs_on_a_worker_thread_and_the_result_arrives_on_the_gui_thread(
    qtbot: QtBot, tasks: TaskRunner
) -> None:
    gui_thread = threading.get_ident()
    seen: dict[str, object] = {}

    def work(_ctx: TaskContext, a: int, b: int) -> int:
        seen["worker"] = threading.get_ident()
        return a + b

    def done(result: object) -> None:
        seen["callback"] = threading.get_ident()
        seen["result"] = result

    tasks.run(work, 2, 3, on_done=done, label="Adding")
    qtbot.waitUntil(lambda: "result" in seen)
    assert seen["result"] == 5
    assert seen["worker"] != gui_thread
    assert seen["callback"] == gui_thread


def test_call_runs_a_plain_service_function(qtbot: QtBot, tasks: TaskRunner) -> None:
    results: list[object] = []
    tasks.call(lambda x: x * 2, 21, on_done=results.append)
    qtbot.waitUntil(lambda: results == [42])


def test_a_service_error_reaches_the_gui_as_its_own_sentence(qtbot: QtBot, tasks: TaskRunner) -> None:
    failures: list[TaskFailure] = []
    done: list[object] = []

    def work(_ctx: TaskContext) -> None:
        raise ValidationFailed("The quantity must be positive.")

    tasks.run(work, on_done=done.append, on_error=failures.append, label="Saving the trade")
    qtbot.waitUntil(lambda: bool(failures))
    assert failures[0].message == "The quantity must be positive."
    assert isinstance(failures[0].error, ValidationFailed)
    assert done == []


def test_an_unexpected_error_is_logged_with_its_traceback_and_shown_as_a_generic_sentence(
    qtbot: QtBot, tasks: TaskRunner, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[TaskFailure] = []

    def work(_ctx: TaskContext) -> None:
        {}["missing"]  # a bug, not a refusal

    with caplog.at_level(logging.ERROR, logger="app.views.tasks"):
        tasks.run(work, on_error=failures.append, label="Loading the blotter")
        qtbot.waitUntil(lambda: bool(failures))
    message = failures[0].message
    assert "loading the blotter" in message and "log" in message
    assert "KeyError" not in message  # a stack trace means nothing to a clerk
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_an_error_nobody_handles_is_announced(qtbot: QtBot, tasks: TaskRunner) -> None:
    def work(_ctx: TaskContext) -> None:
        raise ValidationFailed("That account is closed.")

    with qtbot.waitSignal(tasks.unhandled_error, timeout=10_000) as signal:
        tasks.run(work, label="Booking")
    assert signal.args == ["Booking", "That account is closed."]


def test_database_unavailable_is_broadcast_for_the_connection_monitor(
    qtbot: QtBot, tasks: TaskRunner
) -> None:
    failures: list[TaskFailure] = []

    def work(_ctx: TaskContext) -> None:
        raise DatabaseUnavailable("The database cannot be reached right now.")

    with qtbot.waitSignal(tasks.database_unavailable, timeout=10_000) as signal:
        tasks.run(work, on_error=failures.append, quiet=True)
    assert signal.args == ["The database cannot be reached right now."]
    qtbot.waitUntil(lambda: bool(failures))
    assert failures[0].unavailable


def test_cancelling_a_running_task_stops_it_and_drops_its_result(qtbot: QtBot, tasks: TaskRunner) -> None:
    started = threading.Event()
    stopped_early = threading.Event()
    outcome: list[str] = []

    def work(ctx: TaskContext) -> str:
        started.set()
        for _ in range(10_000):
            if ctx.cancelled:
                stopped_early.set()
                ctx.check()
            threading.Event().wait(0.001)
        return "finished"

    handle = tasks.run(
        work,
        on_done=lambda r: outcome.append(f"done:{r}"),
        on_cancelled=lambda: outcome.append("cancelled"),
        label="Long job",
    )
    assert started.wait(5)
    handle.cancel()
    qtbot.waitUntil(lambda: bool(outcome))
    assert outcome == ["cancelled"]
    assert stopped_early.is_set()
    assert not tasks.busy


# Counts to a hundred million (many seconds on both backends), then answers.
ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"


def test_cancelling_a_stoppable_task_stops_its_query_on_the_database(
    qtbot: QtBot, tasks: TaskRunner, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A page nobody waits for any more: its statement stops where it runs (not only its result is dropped), the
    task ends as a cancel (no error logged or shown), and the database answers the next task."""
    started = threading.Event()
    outcome: list[str] = []

    stopped: list[bool] = []

    def slow_read() -> object:
        try:
            with paging.reader(db) as conn:
                started.set()
                return conn.execute(text(ENDLESS)).scalar()
        except Interrupted:
            stopped.append(True)  # the statement itself was stopped, not run to its end
            raise

    handle = tasks.call(
        slow_read,
        on_done=lambda r: outcome.append(f"done:{r}"),
        on_error=lambda f: outcome.append(f"error:{f.message}"),
        on_cancelled=lambda: outcome.append("cancelled"),
        stoppable=True,
        quiet=True,
    )
    assert started.wait(10)
    time.sleep(0.2)  # the statement is on its way
    with caplog.at_level(logging.ERROR):
        handle.cancel()
        qtbot.waitUntil(lambda: bool(outcome), timeout=15_000)  # the statement alone runs far longer
    assert outcome == ["cancelled"]
    assert stopped == [True]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    def answer() -> object:
        with paging.reader(db) as conn:
            return conn.execute(text("SELECT 42")).scalar()

    answers: list[object] = []
    tasks.call(answer, on_done=answers.append)
    qtbot.waitUntil(lambda: bool(answers))
    assert answers == [42]


def test_cancelling_a_queued_task_means_it_never_runs(qtbot: QtBot) -> None:
    runner = TaskRunner(max_threads=1)
    gate = threading.Event()
    ran: list[str] = []
    outcome: list[str] = []
    try:
        runner.run(lambda _ctx: gate.wait(5), label="Blocker")
        queued = runner.run(
            lambda _ctx: ran.append("queued"),
            on_done=lambda _r: outcome.append("done"),
            on_cancelled=lambda: outcome.append("cancelled"),
        )
        queued.cancel()
        qtbot.waitUntil(lambda: outcome == ["cancelled"])
    finally:
        gate.set()
        runner.shutdown(5000)
    assert ran == []


def test_progress_reaches_the_gui_thread_and_the_status_bar(qtbot: QtBot, tasks: TaskRunner) -> None:
    gui_thread = threading.get_ident()
    reports: list[tuple[int, int, str, int]] = []
    halfway = threading.Event()
    release = threading.Event()
    bar = OpsStatusBar()
    qtbot.addWidget(bar)
    bar.bind_tasks(tasks)
    bar.show()

    def work(ctx: TaskContext) -> str:
        ctx.progress(0, 10, "starting")
        ctx.progress(5, 10, "half")
        halfway.set()
        release.wait(5)
        ctx.progress(10, 10, "done")
        return "ok"

    results: list[object] = []
    tasks.run(
        work,
        on_done=results.append,
        on_progress=lambda d, t, text: reports.append((d, t, text, threading.get_ident())),
        label="Importing trades",
    )
    try:
        assert halfway.wait(5)
        # The status bar shows the task after a short delay (quick tasks never blink) with its progress.
        qtbot.waitUntil(lambda: bar.task_box.isVisible() and bar.progress.maximum() == 10)
        assert "Importing trades" in bar.task_label.text()
    finally:
        release.set()
    qtbot.waitUntil(lambda: results == ["ok"])
    assert reports[-1][:3] == (10, 10, "done")
    assert all(r[3] == gui_thread for r in reports)
    assert [r[0] for r in reports] == sorted(r[0] for r in reports)
    qtbot.waitUntil(lambda: not bar.task_box.isVisible())


def test_the_status_bar_cancel_button_cancels_the_running_task(qtbot: QtBot, tasks: TaskRunner) -> None:
    started = threading.Event()
    outcome: list[str] = []
    bar = OpsStatusBar()
    qtbot.addWidget(bar)
    bar.bind_tasks(tasks)
    bar.show()

    def work(ctx: TaskContext) -> None:
        started.set()
        while not ctx.cancelled:
            threading.Event().wait(0.005)
        ctx.check()

    tasks.run(work, on_cancelled=lambda: outcome.append("cancelled"), label="Rebuilding")
    assert started.wait(5)
    qtbot.waitUntil(bar.task_box.isVisible)
    bar.cancel_button.click()
    qtbot.waitUntil(lambda: outcome == ["cancelled"])


def test_quiet_tasks_do_not_make_the_runner_busy(qtbot: QtBot, tasks: TaskRunner) -> None:
    gate = threading.Event()
    try:
        tasks.run(lambda _ctx: gate.wait(5), quiet=True)
        assert not tasks.busy and tasks.activity() is None
        with qtbot.waitSignal(tasks.busy_changed, timeout=10_000) as signal:
            tasks.run(lambda _ctx: gate.wait(5), label="Visible work")
        assert signal.args == [True]
        assert tasks.activity() is not None and tasks.activity().label == "Visible work"
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not tasks.busy)


def _worker_nices(qtbot: QtBot, runner: TaskRunner, n: int = 4) -> list[int | None]:
    """The nice value each of ``n`` tasks ran at (several at once, so more than one pool thread is seen)."""
    seen: list[int | None] = []
    gate = threading.Barrier(min(n, 2), timeout=5)

    def work(_ctx: TaskContext) -> int | None:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()
        return tasks_module.thread_nice()

    for _ in range(n):
        runner.run(work, on_done=seen.append)
    qtbot.waitUntil(lambda: len(seen) == n)
    return seen


@pytest.mark.parametrize("lower", [None, 0, 3, 25])  # 25: past the lowest priority there is (19)
def test_workers_run_below_the_gui_thread_as_the_runner_or_the_app_says(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, lower: int | None
) -> None:
    """A runner's workers run ``worker_nice`` levels below the GUI thread, so that they yield a core to it (None: the
    app's WORKER_NICE, read as the runner is made; 0: at the GUI thread's priority); the GUI thread is never lowered."""
    monkeypatch.setattr(tasks_module, "WORKER_NICE", 2)
    gui = tasks_module.thread_nice()
    runner = TaskRunner(max_threads=2, worker_nice=lower)
    try:
        seen = _worker_nices(qtbot, runner)
    finally:
        runner.shutdown(5000)
    want = 2 if lower is None else lower
    # No per-thread priority on this system: the workers run as they are.
    assert seen == [None if gui is None else min(gui + want, 19)] * 4
    assert tasks_module.thread_nice() == gui


def test_without_per_thread_priorities_work_still_runs_untouched(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the system has no setpriority (Windows, macOS schedules a process as one), nothing is lowered."""
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(tasks_module.sys, "platform", "win32")
    monkeypatch.setattr(tasks_module.os, "setpriority", lambda *a: calls.append(a), raising=False)
    assert tasks_module.thread_nice() is None
    assert not tasks_module.lower_thread_priority(10)
    runner = TaskRunner(max_threads=2, worker_nice=5)
    try:
        results: list[object] = []
        runner.call(lambda: 42, on_done=results.append)
        qtbot.waitUntil(lambda: results == [42])
    finally:
        runner.shutdown(5000)
    assert calls == []


def test_lowering_a_priority_never_raises_it(qtbot: QtBot) -> None:
    """A thread already at or below the asked priority is left alone (raising it back needs a privilege)."""
    before = tasks_module.thread_nice()
    seen: list[tuple[int | None, bool, int | None]] = []

    def work(_ctx: TaskContext) -> None:
        start = tasks_module.thread_nice()
        ok = tasks_module.lower_thread_priority((start or 0) - 3)
        seen.append((start, ok, tasks_module.thread_nice()))

    runner = TaskRunner(max_threads=1, worker_nice=5)
    try:
        runner.run(work)
        qtbot.waitUntil(lambda: len(seen) == 1)
    finally:
        runner.shutdown(5000)
    start, ok, after = seen[0]
    assert after == start and ok == (start is not None)
    assert tasks_module.thread_nice() == before


def test_views_never_import_sqlalchemy() -> None:
    offenders = []
    files = [*sorted((ROOT / "app" / "views").rglob("*.py")), ROOT / "app" / "gui.py"]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "sqlalchemy"]
    assert offenders == []


def test_the_qt_binding_keeps_python_reference_counts_intact() -> None:
    """PySide6 6.12.0 on Python 3.11 drops a reference to None on every void call and crashes the app within
    minutes; run_gui refuses to start on it. This fails until the environment has a sound binding."""
    assert qt_check.refcount_defect() is None
