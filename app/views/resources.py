"""The one place the GUI finds its icons and its stylesheet (both live in the top-level ``resources/`` folder).

Icons are SVG files we draw ourselves, so they stay sharp at any screen scale. A missing file gives an empty icon
or an empty stylesheet rather than an exception: a cosmetic asset must never stop a clerk from working.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QWidget

log = logging.getLogger(__name__)

ENV_RESOURCES_DIR = "OPSDESK_RESOURCES_DIR"


def resources_dir() -> Path:
    """The ``resources`` package's folder (installed as package data; OPSDESK_RESOURCES_DIR overrides it)."""
    override = os.environ.get(ENV_RESOURCES_DIR)
    if override:
        return Path(override)
    import resources  # the top-level package beside ``app``; imported lazily so a missing copy is not fatal

    return Path(resources.__file__).resolve().parent


def icon_path(name: str) -> Path:
    return resources_dir() / "icons" / f"{name}.svg"


@functools.cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (cached: QIcon is implicitly shared, so handing out copies is cheap)."""
    path = icon_path(name)
    if not path.is_file():
        log.warning("icon %s not found at %s", name, path)
        return QIcon()
    return QIcon(str(path))


def pixmap(name: str, size: int) -> QPixmap:
    """The icon rendered at ``size`` logical pixels, for labels."""
    return icon(name).pixmap(size, size)


def stylesheet() -> str:
    """The application stylesheet, or an empty string if it is missing (Qt's default look still works)."""
    path = resources_dir() / "style.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        log.warning("stylesheet not loaded from %s: %s", path, err)
        return ""


def set_style_property(widget: QWidget, name: str, value: object) -> None:
    """Set a dynamic property the stylesheet selects on (``[tone="bad"]``) and make the new look take effect.

    Qt applies property selectors only when a widget is polished, so a change needs an unpolish/polish round.
    """
    if widget.property(name) == value:
        return
    widget.setProperty(name, value)
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
    widget.update()
