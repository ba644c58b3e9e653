"""Background operations: every database call the GUI makes runs here, on a worker thread, never on the GUI thread.

Modelled on Anki's ``QueryOp``/``CollectionOp`` (a function that runs away from the GUI, with success and failure
callbacks back on it) and Orange3's ``concurrent.py`` (cooperative cancel, progress reports). Usage::

    tasks.call(overview.overview, db, actor, on_done=self.show_counts, label="Loading counts")

    def rebuild(ctx: TaskContext) -> int:
        for i, chunk in enumerate(chunks):
            ctx.check()                       # stop here if the user pressed Cancel
            ctx.progress(i, len(chunks), "Rebuilding")
            ...
    handle = tasks.run(rebuild, on_done=..., on_progress=..., label="Rebuilding")
    handle.cancel()

Results, errors and progress are delivered on the GUI thread through queued signals. An
:class:`~app.services.errors.OpsDeskError` reaches ``on_error`` as its own sentence; anything else is logged with its
traceback and reaches the user as a generic sentence (a stack trace means nothing to a clerk). A task that fails
with DatabaseUnavailable also raises :attr:`TaskRunner.database_unavailable`, so the connection monitor flips the
status bar at once instead of waiting for its next ping.

Thread safety: the worker functions share the one Database object; its engine pool is thread-safe and every service
call opens its own session, so each worker thread has its own session for the duration of the call.

Priority: on Linux a runner can run its workers a few nice levels below the GUI thread (``worker_nice``, default
:data:`WORKER_NICE`, which says why); elsewhere they run as they are.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import shiboken6
from PySide6.QtCore import QMetaObject, QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from app.services.errors import DatabaseUnavailable, OpsDeskError
from app.services.interrupt import Interrupted
from app.services.paging import QueryStop, stopped_by

log = logging.getLogger(__name__)

#: Python's switch interval while the GUI runs: how long a worker may keep the GIL once the GUI thread asks for it.
#: The default 5 ms is paid each time the GUI thread takes the GIL back from a busy worker, and a repaint takes it
#: back many times. Measured with the blotter bench (a worker reading pages beside a probe of the GUI thread's wait):
#: 1 ms cuts the median wait from 6.8 ms to 0.2 ms; the import pipeline runs no slower (bench_import).
GUI_SWITCH_INTERVAL_S = 0.001

#: How much lower the worker threads' scheduling priority is than the GUI thread's (a nice increment; Linux only,
#: where a thread has its own nice value); 0 leaves them at the GUI thread's. On 2 cores shared with a PostgreSQL
#: server the GUI thread's longest stall is mostly waiting for a core. The blotter bench at 1,000,000 trades on a quiet
#: machine: longest stall at +0 83 ms (PostgreSQL) / 90 ms (PostgreSQL + 50 ms); at +10 65 and 76 ms / 47 and 40 ms.
#: A synthetic probe (three workers converting rows in Python beside a 5 ms GUI timer) measured the opposite at +5
#: (the GUI thread waiting for the GIL held by a starved worker): the GIL is handed over every 1 ms
#: (GUI_SWITCH_INTERVAL_S), which keeps that wait short in the real panes. The benches' --worker-nice re-measures it.
WORKER_NICE = 10

# Progress reports closer together than this are dropped (except the last one): a tight loop must not flood the
# GUI thread's event queue with repaint work.
PROGRESS_INTERVAL_S = 0.05


def thread_nice() -> int | None:
    """The calling thread's nice value, or None where threads have none of their own (only Linux schedules each
    thread by its own nice value; elsewhere ``setpriority`` would change the whole process, the GUI included)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return None


def lower_thread_priority(nice: int) -> bool:
    """Run the calling thread at nice value ``nice`` (at most 19) if it runs higher; True if it now runs there.

    Only ever lowers: raising a priority back needs a privilege a clerk's session does not have. Where threads
    have no nice value of their own (see :func:`thread_nice`) or the system refuses, nothing changes.
    """
    current = thread_nice()
    if current is None:
        return False
    target = min(nice, 19)
    if current >= target:
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
    except OSError:
        return False
    return True


def share_the_gil() -> None:
    """Hand the GIL back to the GUI thread sooner (:data:`GUI_SWITCH_INTERVAL_S`); called once as the GUI starts,
    and by the GUI benchmarks so that they measure what the app does."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)


class TaskCancelled(Exception):
    """Raised inside a worker by :meth:`TaskContext.check` when the user cancelled; the runner treats it as a cancel."""


class TaskContext:
    """What a worker function receives: cooperative cancellation and progress reporting."""

    def __init__(
        self, task_id: int, bridge: _Bridge, cancel_event: threading.Event, handle: TaskHandle | None = None
    ) -> None:
        self._id = task_id
        self._bridge = bridge
        self._cancel = cancel_event
        self._handle = handle
        self._last_report = 0.0

    @property
    def cancelled(self) -> bool:
        """True once the user (or the window closing) asked the task to stop; check it between units of work."""
        return self._cancel.is_set()

    def check(self) -> None:
        """Stop the task here (raise TaskCancelled) if it has been cancelled."""
        if self._cancel.is_set():
            raise TaskCancelled()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` as soon as the task is cancelled (at once, here, if it already is). It runs on the
        thread that cancels (usually the GUI thread), so it must be quick and must not block: it is for stopping
        what the worker waits on (:class:`~app.services.paging.QueryStop`), not for work."""
        if self._handle is not None:
            self._handle._when_cancelled(callback)
        elif self._cancel.is_set():
            callback()

    def progress(self, done: int, total: int, text: str = "") -> None:
        """Report ``done`` of ``total`` units (total 0 means "unknown": a busy indicator without a percentage)."""
        now = time.monotonic()
        if total > 0 and done < total and now - self._last_report < PROGRESS_INTERVAL_S:
            return
        self._last_report = now
        _emit(self._bridge.progressed, self._id, int(done), int(total), str(text))


@dataclass(frozen=True)
class TaskFailure:
    """A failed task as the GUI sees it: the sentence to show, and the exception for code that needs to branch."""

    message: str
    error: BaseException
    label: str

    @property
    def unavailable(self) -> bool:
        """The database could not be reached (the connection monitor already knows)."""
        return isinstance(self.error, DatabaseUnavailable)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Activity:
    """What the status bar shows while foreground tasks run."""

    label: str
    done: int
    total: int
    text: str
    running: int
    cancellable: bool


def generic_message(label: str) -> str:
    what = label[:1].lower() + label[1:] if label else "the operation"
    return f"Something went wrong while {what}. The details were written to the log; please tell support."


class TaskHandle:
    """A running (or queued) task; ``cancel()`` stops it cooperatively and drops its result."""

    def __init__(self, runner: TaskRunner, task_id: int, label: str, quiet: bool) -> None:
        self._runner = runner
        self.id = task_id
        self.label = label
        self.quiet = quiet
        self.cancel_event = threading.Event()
        self.finished = False
        self._lock = threading.Lock()
        self._on_cancel: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def running(self) -> bool:
        return not self.finished

    def cancel(self) -> None:
        """Ask the task to stop. Its on_done is never called; on_cancelled is, once it has actually stopped."""
        if self.finished or self.cancel_event.is_set():
            return
        self._set_cancelled()
        self._runner._cancelled(self)

    def _set_cancelled(self) -> None:
        """Set the cancel event and run the worker's cancel callbacks (:meth:`TaskContext.on_cancel`)."""
        with self._lock:
            self.cancel_event.set()
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            _safe_call(callback)

    def _when_cancelled(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.cancel_event.is_set():
                self._on_cancel.append(callback)
                return
        callback()


def _emit(signal: Any, *args: Any) -> None:
    try:
        signal.emit(*args)
    except RuntimeError:
        # The runner was destroyed while this worker ran (window closed, shutdown timed out); nobody is listening.
        log.debug("task result dropped: runner is gone")


class _Bridge(QObject):
    """Lives on the GUI thread; workers emit its signals, so Qt queues the deliveries onto the GUI thread."""

    done = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)
    progressed = Signal(int, int, int, str)


class _Worker(QRunnable):
    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        ctx: TaskContext,
        handle: TaskHandle,
        nice: int | None = None,
    ) -> None:
        super().__init__()
        # The runner keeps the Python object alive until delivery; Qt must not delete it under us.
        self.setAutoDelete(False)
        self._fn = fn
        self._args = args
        self._ctx = ctx
        self._handle = handle
        self._bridge = ctx._bridge
        self._nice = nice

    def run(self) -> None:
        task_id = self._handle.id
        if self._nice is not None:
            # Pool threads come and go (they expire when idle), so each task checks: one system call, and a
            # thread already lowered is left alone.
            lower_thread_priority(self._nice)
        if self._handle.cancel_event.is_set():
            _emit(self._bridge.cancelled, task_id)
            return
        try:
            result = self._fn(self._ctx, *self._args)
        except TaskCancelled:
            _emit(self._bridge.cancelled, task_id)
        except BaseException as err:  # everything must come back to the GUI; a silent worker death hides bugs
            _emit(self._bridge.failed, task_id, err)
        else:
            _emit(self._bridge.done, task_id, result)


@dataclass
class _Entry:
    handle: TaskHandle
    worker: _Worker
    on_done: Callable[[Any], None] | None
    on_error: Callable[[TaskFailure], None] | None
    on_progress: Callable[[int, int, str], None] | None
    on_cancelled: Callable[[], None] | None
    owner: QObject | None = None
    owner_link: QMetaObject.Connection | None = None
    done: int = 0
    total: int = 0
    text: str = ""


class TaskRunner(QObject):
    """Runs functions on a thread pool and hands their outcome back to the GUI thread."""

    #: True while at least one foreground (not quiet) task runs; drives the status bar's busy indicator.
    busy_changed = Signal(bool)
    #: Foreground tasks started, finished or reported progress; read :meth:`activity` for the details.
    activity_changed = Signal()
    #: A task failed because the database cannot be reached (the message is the service's sentence).
    database_unavailable = Signal(str)
    #: A task without an on_error failed: (label, message). The main window shows these.
    unhandled_error = Signal(str, str)

    def __init__(
        self, parent: QObject | None = None, *, max_threads: int = 4, worker_nice: int | None = None
    ) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        # A few threads: enough that a slow query does not block the connection monitor's ping, few enough that a
        # burst of refreshes does not open a connection per pane on the shared database.
        self._pool.setMaxThreadCount(max_threads)
        # The workers run below the thread that made the runner (the GUI thread): see WORKER_NICE.
        lower = WORKER_NICE if worker_nice is None else worker_nice
        base = thread_nice()
        self._worker_nice = base + lower if base is not None and lower > 0 else None
        self._bridge = _Bridge(self)
        self._bridge.done.connect(self._deliver_done)
        self._bridge.failed.connect(self._deliver_failed)
        self._bridge.cancelled.connect(self._deliver_cancelled)
        self._bridge.progressed.connect(self._deliver_progress)
        self._entries: dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._closed = False

    # --- starting work ----------------------------------------------------------------------------------------

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[TaskFailure], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        label: str = "",
        quiet: bool = False,
        priority: int = 0,
        owner: QObject | None = None,
    ) -> TaskHandle:
        """Run ``fn(ctx, *args)`` on a worker thread; ``ctx`` is a :class:`TaskContext`.

        ``quiet`` tasks (the connection ping, the change-feed poll) do not show in the status bar's busy indicator.
        Higher ``priority`` runs first when the pool is saturated. With an ``owner`` (the widget whose callbacks
        these are), destroying the owner cancels the task and none of its callbacks run: they would touch a
        deleted widget.
        """
        if self._closed:
            raise RuntimeError("the task runner has been shut down")
        task_id = next(self._ids)
        handle = TaskHandle(self, task_id, label, quiet)
        ctx = TaskContext(task_id, self._bridge, handle.cancel_event, handle)
        worker = _Worker(fn, args, ctx, handle, self._worker_nice)
        was_busy = self.busy
        entry = _Entry(handle, worker, on_done, on_error, on_progress, on_cancelled, owner)
        if owner is not None:
            entry.owner_link = owner.destroyed.connect(handle.cancel)
        self._entries[task_id] = entry
        self._pool.start(worker, priority)
        if not quiet:
            self._activity_changed(was_busy)
        return handle

    def call(self, fn: Callable[..., Any], *args: Any, stoppable: bool = False, **options: Any) -> TaskHandle:
        """Run a plain service function ``fn(*args)`` (one that takes no task context) on a worker thread.

        ``stoppable``: cancelling the task also stops the database statement it is running (the reads of
        :func:`app.services.paging.reader`, on the server), not only its result: for reads that may take a server
        hundreds of milliseconds nobody waits for (a page far into a million rows, a count)."""
        if stoppable:
            return self.run(partial(stop_queries, fn, args), **options)
        return self.run(lambda _ctx: fn(*args), **options)

    # --- state --------------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return any(not e.handle.quiet for e in self._entries.values())

    @property
    def pending(self) -> int:
        """Tasks started and not yet delivered (quiet ones included)."""
        return len(self._entries)

    def activity(self) -> Activity | None:
        """The most recent foreground task and how many run; None when idle."""
        fg = [e for e in self._entries.values() if not e.handle.quiet]
        if not fg:
            return None
        latest = fg[-1]
        return Activity(
            label=latest.handle.label,
            done=latest.done,
            total=latest.total,
            text=latest.text,
            running=len(fg),
            cancellable=not latest.handle.cancelled,
        )

    def cancel_latest(self) -> None:
        """Cancel the most recent foreground task (the status bar's cancel button)."""
        fg = [e for e in self._entries.values() if not e.handle.quiet and not e.handle.cancelled]
        if fg:
            fg[-1].handle.cancel()

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` ran: timers that outlive their window must not start work any more."""
        return self._closed

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Cancel everything and wait up to ``timeout_ms`` for the workers; True if they all stopped in time."""
        self._closed = True
        for entry in list(self._entries.values()):
            entry.handle._set_cancelled()  # stops their queries too: the wait below is then short
        finished = bool(self._pool.waitForDone(timeout_ms))
        if finished:
            self._entries.clear()
        else:
            # Keep the entries: they hold the QRunnables that are still running; freeing them would crash Qt.
            log.warning("background work still running after %d ms at shutdown", timeout_ms)
        return finished

    def wait(self, timeout_ms: int = 3000) -> bool:
        """Block until the pool is idle (tests and shutdown only; the GUI thread must not wait in normal use)."""
        return bool(self._pool.waitForDone(timeout_ms))

    # --- delivery on the GUI thread -----------------------------------------------------------------------------

    def _finish(self, task_id: int) -> _Entry | None:
        """Forget a delivered task and return it (None if unknown)."""
        was_busy = self.busy
        entry = self._entries.pop(task_id, None)
        if entry is None:
            return None
        entry.handle.finished = True
        if entry.owner_link is not None and _alive(entry.owner):
            # Otherwise a long-lived pane would collect one connection per refresh all day.
            QObject.disconnect(entry.owner_link)
        if not entry.handle.quiet:
            self._activity_changed(was_busy)
        return entry

    @Slot(int, object)
    def _deliver_done(self, task_id: int, result: object) -> None:
        entry = self._finish(task_id)
        if entry is None or not _alive(entry.owner):
            return
        if entry.handle.cancelled:
            _safe_call(entry.on_cancelled)
            return
        _safe_call(entry.on_done, result)

    @Slot(int, object)
    def _deliver_failed(self, task_id: int, error: object) -> None:
        entry = self._finish(task_id)
        if entry is None:
            return
        assert isinstance(error, BaseException)
        label = entry.handle.label
        if isinstance(error, OpsDeskError):
            message = str(error)
        else:
            log.error(
                "background task %r failed",
                label or task_id,
                exc_info=(type(error), error, error.__traceback__),
            )
            message = generic_message(label)
        if isinstance(error, DatabaseUnavailable):
            # Even a cancelled task's failure tells us the database is gone; the monitor wants to know.
            self.database_unavailable.emit(message)
        if not _alive(entry.owner):
            return
        if entry.handle.cancelled:
            _safe_call(entry.on_cancelled)
            return
        failure = TaskFailure(message=message, error=error, label=label)
        if entry.on_error is not None:
            _safe_call(entry.on_error, failure)
        else:
            self.unhandled_error.emit(label, message)

    @Slot(int)
    def _deliver_cancelled(self, task_id: int) -> None:
        entry = self._finish(task_id)
        if entry is not None and _alive(entry.owner):
            _safe_call(entry.on_cancelled)

    @Slot(int, int, int, str)
    def _deliver_progress(self, task_id: int, done: int, total: int, text: str) -> None:
        entry = self._entries.get(task_id)
        if entry is None or entry.handle.cancelled or not _alive(entry.owner):
            return
        entry.done, entry.total, entry.text = done, total, text
        _safe_call(entry.on_progress, done, total, text)
        if not entry.handle.quiet:
            self.activity_changed.emit()

    def _cancelled(self, handle: TaskHandle) -> None:
        """A handle was cancelled on the GUI thread: if it never started, take it off the queue and report now."""
        entry = self._entries.get(handle.id)
        if entry is None:
            return
        if self._pool.tryTake(entry.worker):
            # Deliver on the next turn of the event loop, as every other outcome is: callers can rely on callbacks
            # never running inside their own call to cancel().
            QTimer.singleShot(0, self, lambda: self._deliver_cancelled(handle.id))
        if not handle.quiet:
            self.activity_changed.emit()

    def _activity_changed(self, was_busy: bool) -> None:
        busy = self.busy
        if busy != was_busy:
            self.busy_changed.emit(busy)
        self.activity_changed.emit()


def stop_queries(fn: Callable[..., Any], args: tuple[Any, ...], ctx: TaskContext) -> Any:
    """Worker: ``fn(*args)``, whose reads stop where they run once the task is cancelled; then a cancel (the runner
    drops it quietly), not a failure."""
    stop = QueryStop()
    ctx.on_cancel(stop.stop)
    try:
        with stopped_by(stop):
            return fn(*args)
    except Interrupted:
        ctx.check()
        raise


def _alive(owner: QObject | None) -> bool:
    """False once the owner's C++ object is deleted (its Python wrapper outlives it)."""
    return owner is None or shiboken6.isValid(owner)


def _safe_call(fn: Callable[..., None] | None, *args: Any) -> None:
    """Run a GUI callback; a bug in one pane's callback must not break delivery for the others.

    The exception goes to ``sys.excepthook``: run_gui's hook logs it, and pytest-qt's fails the test that caused it.
    """
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:
        sys.excepthook(*sys.exc_info())
