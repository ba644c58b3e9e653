"""The SLA monitor pane's refresh time, its background evaluation, and the longest GUI-thread stall, on the demo book.

A demo book (``--trades``, default 20,000) is built into a temporary SQLite file with the SLA demo seed (default
SLAs, transaction reports, one recorded evaluation). The pane (as a supervisor: tiles, every chart, the workload
view and the health checklist) is shown offscreen; its first load (which also measures the slow KPIs) and its
first background evaluation (which builds the exchange calendars, once per process) are reported apart. Then:

- ``--refreshes`` refreshes, each timed from ``refresh()`` to ``refreshed``: the figure. Worker:
  ``monitor.read_dashboard`` (stored states, per-day outcomes, cached slow KPIs); GUI thread: feeding the widgets.
- ``--evaluations`` background evaluations (``evaluate_now()`` to ``evaluated``: ``evaluate_all(record=True)``),
  plus one that also measures the slow KPIs (daily charts, throughput, checklist), as the pane does every few
  minutes. Not the refresh figure: the pane shows the stored data meanwhile, and refreshes when it is done.

A 5 ms QTimer records the longest gap between its ticks during the refreshes and, separately, during the
evaluations: the longest the GUI thread was blocked. References printed beside: the same services called directly,
without the GUI, and the refresh as it was before (``evaluate_all(record=True)`` + ``kpis.dashboard`` per refresh).
``--screenshot FILE`` saves the pane as shown (e.g. docs/screenshots/sla_monitors.png on the default demo book).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_sla_pane.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_sla_pane.py --trades 100000 --refreshes 5
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_sla_pane.py --screenshot docs/screenshots/sla_monitors.png
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TARGET_REFRESH_MS = 500
TARGET_STALL_MS = 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=20_000)
    parser.add_argument("--refreshes", type=int, default=7)
    parser.add_argument("--evaluations", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, help="save the pane as shown to this PNG")
    parser.add_argument(
        "--db", type=Path, help="an existing demo book (SQLite file, written to) instead of building one"
    )
    args = parser.parse_args()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.models.enums import Role
    from app.services import demo, schema
    from app.services.db import Database
    from app.services.permissions import SYSTEM, Actor
    from app.services.sla import evaluate, kpis, monitor
    from app.views import resources
    from app.views.panes.base import Workspace
    from app.views.panes.sla_monitors import SlaMonitorsPane
    from app.views.tasks import TaskRunner

    # As app/gui.py does at start-up: a 1 ms GIL switch interval, so a worker's pandas work cannot hold the GUI
    # thread off the interpreter for the default 5 ms slices in a row.
    sys.setswitchinterval(0.001)
    app = QApplication.instance() or QApplication([])
    app.setStyleSheet(resources.stylesheet())
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{args.db or Path(tmp) / 'pane.sqlite'}")
        schema.upgrade(db)
        if args.db is None:
            print(f"building the demo book ({args.trades:,} trades) …", flush=True)
            t0 = time.perf_counter()
            demo.build_demo(db, SYSTEM, trades=args.trades, seed=11, password="correct-horse-9")
            evaluate.seed_demo(db, SYSTEM)
            print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
        actor = Actor(user_id=None, username="supervisor", role=Role.SUPERVISOR, timezone="Europe/London")
        tasks = TaskRunner()
        gc.collect()
        gc.freeze()  # as app/gui.py does after start-up (the pane freezes again after building its charts)
        pane = SlaMonitorsPane(Workspace(db, actor, tasks))
        pane.resize(1280, 1900 if args.screenshot else 1600)  # the screenshot shows the whole checklist

        refreshed: list[float] = []
        evaluated: list[float] = []
        pane.refreshed.connect(lambda: refreshed.append(time.perf_counter()))
        pane.evaluated.connect(lambda: evaluated.append(time.perf_counter()))

        def pump(until: Callable[[], bool], timeout: float = 300.0) -> None:
            end = time.perf_counter() + timeout
            while not until() and time.perf_counter() < end:
                app.processEvents()
                time.sleep(0.001)

        def settled() -> bool:
            return not pane.evaluating and not pane.loading and not pane.stale

        def idle(seconds: float = 0.05) -> None:
            end = time.perf_counter() + seconds
            pump(lambda: time.perf_counter() >= end)

        t0 = time.perf_counter()
        pane.show()
        pump(lambda: len(refreshed) >= 1)
        first = (refreshed[0] - t0) * 1000
        pump(lambda: len(evaluated) >= 1)
        first_eval = (evaluated[0] - t0) * 1000 - first
        pump(settled)
        idle(0.2)

        stall = {"last": time.perf_counter(), "max": 0.0}

        def tick() -> None:
            now = time.perf_counter()
            stall["max"] = max(stall["max"], now - stall["last"])
            stall["last"] = now

        meter = QTimer()
        meter.setInterval(5)
        meter.timeout.connect(tick)
        meter.start()
        times = []
        stall["last"], stall["max"] = time.perf_counter(), 0.0
        for _ in range(args.refreshes):
            n = len(refreshed)
            t0 = time.perf_counter()
            pane.refresh()
            pump(lambda n=n: len(refreshed) > n)
            times.append((refreshed[-1] - t0) * 1000)
            idle()
        refresh_stall = stall["max"] * 1000

        def background(measure_slow: bool) -> float:
            n = len(evaluated)
            t0 = time.perf_counter()
            pane.evaluate_now(measure_slow=measure_slow)
            pump(lambda: len(evaluated) > n)
            took = (evaluated[-1] - t0) * 1000
            pump(settled)  # and the refresh it triggers
            idle()
            return took

        stall["last"], stall["max"] = time.perf_counter(), 0.0
        evals = [background(False) for _ in range(args.evaluations)]
        with_slow = background(True)
        eval_stall = stall["max"] * 1000
        meter.stop()
        if args.screenshot:
            pane.scroll.verticalScrollBar().setValue(0)
            idle(0.3)
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            pane.grab().save(str(args.screenshot))
            print(f"  screenshot: {args.screenshot}")

        def median_ms(fn: Callable[[], object], n: int = 3) -> float:
            runs = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                runs.append((time.perf_counter() - t0) * 1000)
            return statistics.median(runs)

        slow = pane.slow
        ref_read = median_ms(lambda: monitor.read_dashboard(db, actor, slow=slow))
        ref_eval = median_ms(lambda: evaluate.evaluate_all(db, actor, record=True))
        ref_slow = median_ms(lambda: monitor.slow_kpis(db, actor), 1)

        def before() -> None:
            ev = evaluate.evaluate_all(db, actor, record=True)
            kpis.dashboard(db, actor, ev, verify_audit=False)

        ref_before = median_ms(before)
        items = pane.evaluation.items if pane.evaluation is not None else 0
        tasks.shutdown(5000)
        db.dispose()
    refresh = statistics.median(times)
    ok = lambda v, target: "ok" if v < target else "MISS"  # noqa: E731
    print(
        f"\nSLA monitor pane on {f'{args.db.name}' if args.db else f'a {args.trades:,}-trade demo book'}, "
        f"{items:,} open SLA items "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    print(f"  {'first load (stored read + slow KPIs)':52s} {first:8.0f} ms")
    print(f"  {'first background evaluation (builds the calendars)':52s} {first_eval:8.0f} ms")
    print(
        f"  {'refresh (stored read), median of ' + str(args.refreshes):52s} {refresh:8.0f} ms  < {TARGET_REFRESH_MS} ms  "
        f"{ok(refresh, TARGET_REFRESH_MS)}   (max {max(times):.0f} ms)"
    )
    print(f"  {'  reference: monitor.read_dashboard alone, median of 3':52s} {ref_read:8.0f} ms")
    print(
        f"  {'longest GUI-thread stall during the refreshes':52s} {refresh_stall:8.1f} ms  < {TARGET_STALL_MS} ms  "
        f"{ok(refresh_stall, TARGET_STALL_MS)}"
    )
    print(
        f"  {'background evaluation (record), median of ' + str(args.evaluations):52s} "
        f"{statistics.median(evals):8.0f} ms  (off the GUI thread; then a refresh)"
    )
    print(f"  {'  reference: evaluate_all(record=True) alone, median of 3':52s} {ref_eval:8.0f} ms")
    print(f"  {'background evaluation + slow KPIs (every few min)':52s} {with_slow:8.0f} ms")
    print(f"  {'  reference: monitor.slow_kpis alone':52s} {ref_slow:8.0f} ms")
    print(
        f"  {'longest GUI-thread stall during the evaluations':52s} {eval_stall:8.1f} ms  < {TARGET_STALL_MS} ms  "
        f"{ok(eval_stall, TARGET_STALL_MS)}"
    )
    print(f"  {'before: evaluate + kpis.dashboard per refresh':52s} {ref_before:8.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
