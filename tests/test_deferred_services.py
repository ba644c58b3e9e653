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
