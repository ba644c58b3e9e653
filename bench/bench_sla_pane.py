"""The SLA monitor pane's refresh time and the longest GUI-thread stall, on the demo book.

A demo book (``--trades``, default 20,000) is built into a temporary SQLite file with the SLA demo seed (default
SLAs, transaction reports, one recorded evaluation). The pane (as a supervisor: tiles, every chart, the workload
view and the health checklist) is shown offscreen; its first load (which builds the exchange calendars, once per
process) is reported apart. Then ``--refreshes`` refreshes, each timed from ``refresh()`` to ``refreshed`` (worker:
``evaluate_all(record=True)`` + ``kpis.dashboard``; GUI thread: feeding the widgets). A 5 ms QTimer records the
longest gap between its ticks over the refreshes: the longest the GUI thread was blocked. Reference printed beside:
the same services called directly, without the GUI.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_sla_pane.py
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
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
    args = parser.parse_args()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.models.enums import Role
    from app.services import demo, schema
    from app.services.db import Database
    from app.services.permissions import SYSTEM, Actor
    from app.services.sla import evaluate, kpis
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
        db = Database(f"sqlite:///{tmp}/pane.sqlite")
        schema.upgrade(db)
        print(f"building the demo book ({args.trades:,} trades) …", flush=True)
        demo.build_demo(db, SYSTEM, trades=args.trades, seed=11, password="correct-horse-9")
        evaluate.seed_demo(db, SYSTEM)
        actor = Actor(user_id=None, username="supervisor", role=Role.SUPERVISOR, timezone="Europe/London")
        tasks = TaskRunner()
        gc.collect()
        gc.freeze()  # as app/gui.py does after start-up (the pane freezes again after building its charts)
        pane = SlaMonitorsPane(Workspace(db, actor, tasks))
        pane.resize(1280, 1600)

        done: list[float] = []
        pane.refreshed.connect(lambda: done.append(time.perf_counter()))

        def wait(n: int, timeout: float = 120.0) -> None:
            end = time.perf_counter() + timeout
            while len(done) < n and time.perf_counter() < end:
                app.processEvents()
                time.sleep(0.001)

        t0 = time.perf_counter()
        pane.show()
        wait(1)
        first = (done[0] - t0) * 1000
        for _ in range(20):
            app.processEvents()

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
        for i in range(args.refreshes):
            stall["last"] = time.perf_counter()
            t0 = time.perf_counter()
            pane.refresh()
            wait(2 + i)
            times.append((done[-1] - t0) * 1000)
            end = time.perf_counter() + 0.05
            while time.perf_counter() < end:
                app.processEvents()
                time.sleep(0.001)
        meter.stop()
        refs = []
        for _ in range(3):
            t0 = time.perf_counter()
            ev = evaluate.evaluate_all(db, actor, record=True)
            kpis.dashboard(db, actor, ev, verify_audit=False)
            refs.append((time.perf_counter() - t0) * 1000)
        tasks.shutdown(5000)
        db.dispose()
    refresh = statistics.median(times)
    print(f"\nSLA monitor pane on a {args.trades:,}-trade demo book (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'first load (builds the exchange calendars)':46s} {first:8.0f} ms")
    print(
        f"  {'refresh, median of ' + str(args.refreshes):46s} {refresh:8.0f} ms  < {TARGET_REFRESH_MS} ms  "
        f"{'ok' if refresh < TARGET_REFRESH_MS else 'MISS'}   (max {max(times):.0f} ms)"
    )
    print(f"  {'reference: the services alone, median of 3':46s} {statistics.median(refs):8.0f} ms")
    print(
        f"  {'longest GUI-thread stall during the refreshes':46s} {stall['max'] * 1000:8.1f} ms  < {TARGET_STALL_MS} ms  "
        f"{'ok' if stall['max'] * 1000 < TARGET_STALL_MS else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
