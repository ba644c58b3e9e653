"""Detect a Qt binding that corrupts Python's reference counts, so OpsDesk refuses to start instead of crashing later.

PySide6 6.12.0 returns ``None`` from every void method, and ``True`` from ``Signal.emit()``, without taking a
reference. On Python 3.12+ those objects are immortal and nothing happens; on Python 3.10/3.11 each call drops a
reference, and after some thousands of calls the interpreter aborts ("Fatal Python error: none_dealloc"). A
workstation makes that many calls in minutes. PySide6 6.11.3 does not have the defect.

The probe makes a few dozen calls and watches the counts; if they fall, it gives the references back (the probe
itself must do no harm) and returns a sentence saying what to install.
"""

from __future__ import annotations

import ctypes
import platform
import sys

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject, Signal

_CALLS = 64


class _Probe(QObject):
    ping = Signal()


def _give_back(obj: object, count: int) -> None:
    for _ in range(count):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def refcount_defect() -> str | None:
    """None when the binding is sound, else the sentence to show (what is wrong and how to fix it)."""
    probe = _Probe()
    none_before = sys.getrefcount(None)
    for _ in range(_CALLS):
        probe.setObjectName("probe")  # a void method: returns None
    none_lost = none_before - sys.getrefcount(None)
    true_before = sys.getrefcount(True)
    for _ in range(_CALLS):
        probe.ping.emit()
    true_lost = true_before - sys.getrefcount(True)
    broken = False
    if none_lost >= _CALLS:
        _give_back(None, none_lost)
        broken = True
    if true_lost >= _CALLS:
        _give_back(True, true_lost)
        broken = True
    if not broken:
        return None
    return (
        f"This installation pairs PySide6 {pyside_version} with Python {platform.python_version()}, a combination "
        "that corrupts Python's memory and would crash OpsDesk within minutes. Install PySide6-Essentials 6.11.3 "
        "(pip install 'PySide6-Essentials<6.12'), or run OpsDesk on Python 3.12 or newer."
    )
