"""The collector helpers: a heavy import on a worker thread runs with the cyclic collector paused (its full passes
held Python's lock for up to 74 ms in the capture service's import, stalling the GUI thread), then freezes what it
created; the pause is shared by overlapping users and ends with the last of them."""

from __future__ import annotations

import gc
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from app.services.collector import cycle_collector_paused, import_quietly


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("opsdesk_quiet_")]:
        del sys.modules[name]


def test_a_quiet_import_runs_with_the_collector_paused_and_freezes_what_it_made(module_dir: Path) -> None:
    (module_dir / "opsdesk_quiet_probe.py").write_text(
        textwrap.dedent(
            """
            import gc
            COLLECTOR_ON = gc.isenabled()
            CYCLE = []
            CYCLE.append(CYCLE)  # a long-lived container, as an imported module makes thousands of
            """
        )
    )
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        module = import_quietly("opsdesk_quiet_probe")
        assert module.COLLECTOR_ON is False  # paused while the module's body ran
        assert gc.isenabled()  # and on again after
        assert gc.get_freeze_count() > frozen  # what the import made is out of every later full pass
        assert import_quietly("opsdesk_quiet_probe") is module  # already imported: returned as is
    finally:
        gc.unfreeze()


def test_a_failing_import_still_gives_the_collector_back(module_dir: Path) -> None:
    (module_dir / "opsdesk_quiet_broken.py").write_text("raise RuntimeError('broken module')\n")
    with pytest.raises(RuntimeError, match="broken module"):
        import_quietly("opsdesk_quiet_broken")
    assert gc.isenabled()


def test_overlapping_pauses_end_with_the_last_one() -> None:
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with cycle_collector_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with cycle_collector_paused():
        t.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other thread's pause still holds
    release.set()
    t.join(5)
    assert gc.isenabled()


def test_a_module_another_thread_is_importing_is_returned_whole(
    module_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers ask for the same heavy module at once (the repair dialog prepares it while the repair runs):
    the second gets it once the first has finished importing it, never half initialised."""
    started = threading.Event()
    monkeypatch.setattr(sys, "opsdesk_probe_started", started, raising=False)
    (module_dir / "opsdesk_quiet_slow.py").write_text(
        "import sys, time\nsys.opsdesk_probe_started.set()\ntime.sleep(0.3)\ndef work():\n    return 'done'\n"
    )
    results: list[object] = []

    def worker() -> None:
        try:
            results.append(import_quietly("opsdesk_quiet_slow").work())
        except Exception as err:  # noqa: BLE001 (the test reports what went wrong)
            results.append(err)

    first, second = threading.Thread(target=worker), threading.Thread(target=worker)
    try:
        first.start()
        assert started.wait(
            10
        )  # the first is inside the module's body: the module is in sys.modules, half made
        second.start()
        first.join(10)
        second.join(10)
    finally:
        gc.unfreeze()
    assert results == ["done", "done"]
