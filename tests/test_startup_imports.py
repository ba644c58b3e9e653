"""The application's start imports neither pandas nor Arrow nor numpy: the first blotter page needs none of them, and
importing them with the main window was most of a second of a 3.3 s start (bench/bench_startup.py). The capture
pipeline, the SLA evaluation, the business-day calendars and the panes behind their tabs are imported where they are
first used; even the panes behind their tabs, once built, bring in neither pandas nor Arrow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
import app.gui
from app.views.main_window import MainWindow
from app.views.panes.trade_blotter import TradeBlotterPane
heavy = sorted(m for m in ("numpy", "pandas", "pyarrow") if m in sys.modules)
print(",".join(heavy) or "none")
from app.views.panes import PANE_CLASSES
heavy = sorted(m for m in ("pandas", "pyarrow") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_the_main_window_and_its_panes_import_without_pandas_or_arrow() -> None:
    """The window with its front pane: no numpy, pandas or Arrow; every pane: still no pandas or Arrow."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-2:] == ["none", "none"], out.stdout + out.stderr


def test_the_pane_registry_agrees_with_the_pane_classes() -> None:
    """The main window names its docks and menus from ``PANES`` before any pane is built: each entry must say what
    its class says (id, title, icon), or a dock would carry another pane's name."""
    from app.views.panes import PANES

    for entry in PANES:
        cls = entry.load()
        assert (cls.pane_id, cls.title, cls.icon_name) == (entry.pane_id, entry.title, entry.icon_name)


DETAIL_CHILD = """
import sys
from app.views.blotter import capture_api
assert callable(capture_api.get("trade_detail"))
assert capture_api.reasons()
print(",".join(sorted(m for m in ("numpy", "pandas", "pyarrow") if m in sys.modules)) or "none")
"""


def test_the_trade_detail_and_the_reason_codes_import_without_pandas() -> None:
    """A trade's detail panel (opened all day) and the filter bar's reason codes must not wait for pandas, numpy and
    pyarrow: importing them takes about two seconds and holds Python's lock in stretches while the clerk scrolls.
    They live in light modules of the capture service, whose package imports its heavy parts on first use."""
    out = subprocess.run(
        [sys.executable, "-c", DETAIL_CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "none", out.stdout + out.stderr
