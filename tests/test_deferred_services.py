"""Every service function a pane resolves on a worker thread exists: a misspelt name fails here, not on a click."""

from __future__ import annotations

import pytest

from app.views import deferred
from app.views.blotter import capture_api
from app.views.breaks import workflow_api


@pytest.mark.parametrize("name", sorted(capture_api.FUNCTIONS))
def test_each_capture_function_the_blotter_calls_resolves(name: str) -> None:
    assert callable(capture_api.get(name))


@pytest.mark.parametrize(("module", "name"), workflow_api.ACTIONS)
def test_each_workflow_action_the_panes_call_resolves(module: str, name: str) -> None:
    assert callable(workflow_api.get(module, name))


def test_an_unknown_path_is_refused_loudly() -> None:
    with pytest.raises(AttributeError):
        deferred.resolve("app.services.capture.importer:no_such_function")
    with pytest.raises(TypeError):
        deferred.resolve("app.services.capture.importer:__name__")


def test_the_reason_codes_come_with_words() -> None:
    reasons = capture_api.reasons()
    assert reasons and all(isinstance(code, str) and text for code, text in reasons.items())


def test_preparing_a_capture_function_imports_it_on_a_worker_thread(
    qtbot, tasks, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import's or export's file picker, or the repair dialog, asks for its capture function ahead: the module
    is imported then, in the background (never on the GUI thread), so the call starts at once later."""
    import sys
    import threading

    (tmp_path / "opsdesk_prepare_probe.py").write_text(
        "import threading\nIMPORTED_ON = threading.current_thread()\ndef work():\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(capture_api.FUNCTIONS, "probe", "opsdesk_prepare_probe:work")
    try:
        capture_api.prepare(tasks, "probe")
        qtbot.waitUntil(lambda: "opsdesk_prepare_probe" in sys.modules and not tasks.pending, timeout=10_000)
        assert sys.modules["opsdesk_prepare_probe"].IMPORTED_ON is not threading.main_thread()
        # A name that cannot be resolved fails quietly here (it fails loudly when called).
        monkeypatch.setitem(capture_api.FUNCTIONS, "broken", "opsdesk_no_such_module:work")
        capture_api.prepare(tasks, "broken")
        qtbot.waitUntil(lambda: not tasks.pending, timeout=10_000)
    finally:
        sys.modules.pop("opsdesk_prepare_probe", None)
