"""Operations > Recon definitions…: the reconciliations' configurations, edited by supervisors.

The list on the left is read in the background (``definitions.list_definitions``). The editor has two views of the
same config: **Structure** (the fields with their columns on each side, type and tolerance — exact, abs, rel or
days — and reason code; the key and compared fields; the ordered passes, moved up and down) and **JSON** (the whole
config as text, for what the structure view does not show: sources, conditions, stake, coverage). Every edit is
validated at once by the service's own validator (``definitions.validate``: config shape, the sources' columns and
types; pure Python, no database) and the first problem is shown under the editor, naming the field at fault.

Save runs ``update_definition(..., seen_version=...)`` on the TaskRunner: a stale edit (someone saved in between) is
refused with who changed it and when, and nothing is overwritten. Only roles with EDIT_RULES (supervisors, admins)
may save; for everyone else Save is disabled with a tooltip saying who may, and the editor is read-only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.services.permissions import Permission
from app.views.operations.common import guard, who_may

if TYPE_CHECKING:
    from app.views.panes.base import Workspace
    from app.views.tasks import TaskFailure

FIELD_TYPES = ("text", "money", "quantity", "price", "number", "date")
TOLERANCE_KINDS = ("exact", "abs", "rel", "days")
FIELD_COLUMNS = ["Field", "Left column", "Right column", "Type", "Tolerance", "Value", "Code", "Category"]
PASS_COLUMNS = ["Name", "Kind", "Keys", "Require", "Duplicates", "Many", "Sum"]
VALIDATE_DELAY_MS = 250


def read_definitions(db: Any, actor: Any) -> tuple[list[Any], Callable[[Any], Any]]:
    """Worker: the definitions (the built-in ones created first when there are none), and the validator.

    The validator is handed back so the editor can check every edit on the GUI thread: it is pure Python over
    the sources' static column lists, and its module (which pulls in pandas) is imported here, off the GUI thread.
    """
    from app.services.recon import definitions as defs

    found = defs.list_definitions(db, actor)
    if not found and (actor.can(Permission.RUN_PROCESSES) or actor.can(Permission.EDIT_RULES)):
        defs.ensure_default_definitions(db, actor)
        found = defs.list_definitions(db, actor)
    return found, defs.validate


def save(db: Any, actor: Any, definition_id: int, config: dict[str, Any], seen_version: int) -> Any:
    """Worker: the versioned, audited update (a stale one is refused with its reason)."""
    from app.services.recon import definitions as defs

    return defs.update_definition(db, actor, definition_id, config, seen_version=seen_version)


def _csv(items: Any) -> str:
    if isinstance(items, str):
        return items
    return ", ".join(str(x) for x in items or [])


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _combo(options: tuple[str, ...], value: str) -> QComboBox:
    box = QComboBox()
    for o in options:
        box.addItem(o, o)
    i = box.findData(value)
    if i < 0:  # keep a value the editor does not know, so the validator can name it
        box.addItem(value, value)
        i = box.count() - 1
    box.setCurrentIndex(i)
    return box


def _tolerance(spec: Any) -> tuple[str, str]:
    """(kind, value) of a tolerance as stored: 'abs=0.01', {'abs': '0.01'}, 'exact' or absent."""
    if spec is None or spec == "":
        return "exact", ""
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, value),) = spec.items()
        return str(kind).lower(), str(value)
    text = str(spec).strip()
    if text.lower() == "exact":
        return "exact", ""
    kind, _sep, value = text.partition("=")
    return kind.strip().lower(), value.strip()


class StructureEditor(QWidget):
    """Fields with their tolerances, key and compare, and the ordered passes of one config."""

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base: dict[str, Any] = {}
        self._loading = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(
            QLabel("Fields: the column each side reads, how it is compared, and its reason code")
        )
        self.fields = QTableWidget(0, len(FIELD_COLUMNS))
        self.fields.setObjectName("definitionFields")
        self.fields.setHorizontalHeaderLabels(FIELD_COLUMNS)
        self.fields.verticalHeader().hide()
        self.fields.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.fields.horizontalHeader().setStretchLastSection(True)
        self.fields.itemChanged.connect(lambda _i: self._changed())
        layout.addWidget(self.fields, 3)
        field_buttons = QHBoxLayout()
        self.add_field = QPushButton("Add field")
        self.add_field.clicked.connect(lambda: self._add_field("new_field", {}))
        self.remove_field = QPushButton("Remove field")
        self.remove_field.clicked.connect(lambda: self._remove(self.fields))
        field_buttons.addWidget(self.add_field)
        field_buttons.addWidget(self.remove_field)
        field_buttons.addStretch(1)
        layout.addLayout(field_buttons)

        form = QFormLayout()
        self.key = QLineEdit()
        self.key.setToolTip("The fields that identify a record (comma-separated field names)")
        self.compare = QLineEdit()
        self.compare.setToolTip("The fields a formed pair is compared on, each within its tolerance")
        self.key.textEdited.connect(lambda _t: self._changed())
        self.compare.textEdited.connect(lambda _t: self._changed())
        form.addRow("Key", self.key)
        form.addRow("Compare", self.compare)
        layout.addLayout(form)

        layout.addWidget(QLabel("Passes, in the order they run over what earlier passes left"))
        self.passes = QTableWidget(0, len(PASS_COLUMNS))
        self.passes.setObjectName("definitionPasses")
        self.passes.setHorizontalHeaderLabels(PASS_COLUMNS)
        self.passes.verticalHeader().hide()
        self.passes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.passes.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.passes.horizontalHeader().setStretchLastSection(True)
        self.passes.itemChanged.connect(lambda _i: self._changed())
        layout.addWidget(self.passes, 2)
        pass_buttons = QHBoxLayout()
        self.up = QPushButton("Move up")
        self.up.clicked.connect(lambda: self.move_pass(-1))
        self.down = QPushButton("Move down")
        self.down.clicked.connect(lambda: self.move_pass(1))
        self.add_pass = QPushButton("Add pass")
        self.add_pass.clicked.connect(
            lambda: self._add_pass({"name": f"pass_{self.passes.rowCount() + 1}", "kind": "pair", "keys": []})
        )
        self.remove_pass = QPushButton("Remove pass")
        self.remove_pass.clicked.connect(lambda: self._remove(self.passes))
        for b in (self.up, self.down, self.add_pass, self.remove_pass):
            pass_buttons.addWidget(b)
        pass_buttons.addStretch(1)
        layout.addLayout(pass_buttons)

    # --- config <-> widgets ---------------------------------------------------------------------------------------

    def load(self, config: dict[str, Any]) -> None:
        self._loading = True
        try:
            self._base = copy.deepcopy(config)
            self.fields.setRowCount(0)
            for name, spec in (config.get("fields") or {}).items():
                self._add_field(name, spec if isinstance(spec, dict) else {})
            self.key.setText(_csv(config.get("key")))
            self.compare.setText(_csv(config.get("compare")))
            self.passes.setRowCount(0)
            for p in config.get("passes") or []:
                self._add_pass(p if isinstance(p, dict) else {})
            self.fields.resizeColumnsToContents()
            self.passes.resizeColumnsToContents()
        finally:
            self._loading = False

    def config(self) -> dict[str, Any]:
        """The config with the structure view's edits on top of everything it does not show."""
        out = copy.deepcopy(self._base)
        fields: dict[str, Any] = {}
        for r in range(self.fields.rowCount()):
            name = self._text(self.fields, r, 0)
            old = dict((self._base.get("fields") or {}).get(name) or {})
            spec: dict[str, Any] = {
                k: v for k, v in old.items() if k not in ("left", "right", "type", "tolerance")
            }
            left, right = self._text(self.fields, r, 1), self._text(self.fields, r, 2)
            if left and left != name:
                spec["left"] = left
            if right and right != name:
                spec["right"] = right
            ftype = self._combo(self.fields, r, 3)
            if ftype != "text" or "type" in old:
                spec["type"] = ftype
            kind, value = self._combo(self.fields, r, 4), self._text(self.fields, r, 5)
            if kind != "exact":
                spec["tolerance"] = f"{kind}={value}"
            for col, key in ((6, "code"), (7, "category")):
                text = self._text(self.fields, r, col)
                if text:
                    spec[key] = text
                else:
                    spec.pop(key, None)
            fields[name] = spec
        out["fields"] = fields
        out["key"] = _names(self.key.text())
        out["compare"] = _names(self.compare.text())
        passes = []
        for r in range(self.passes.rowCount()):
            p: dict[str, Any] = {
                "name": self._text(self.passes, r, 0),
                "kind": self._combo(self.passes, r, 1),
            }
            p["keys"] = _names(self._text(self.passes, r, 2))
            for col, key in ((3, "require"), (6, "sum")):
                names = _names(self._text(self.passes, r, col))
                if names:
                    p[key] = names
            duplicates = self._combo(self.passes, r, 4)
            if duplicates != "skip":
                p["duplicates"] = duplicates
            if p["kind"] == "aggregate":
                p["many"] = self._combo(self.passes, r, 5)
            passes.append(p)
        out["passes"] = passes
        return out

    def _add_field(self, name: str, spec: dict[str, Any]) -> None:
        r = self.fields.rowCount()
        was = self._loading
        self._loading = True
        try:
            self.fields.insertRow(r)
            for col, text in (
                (0, name),
                (1, str(spec.get("left", name))),
                (2, str(spec.get("right", name))),
                (5, _tolerance(spec.get("tolerance"))[1]),
                (6, str(spec.get("code") or "")),
                (7, str(spec.get("category") or "")),
            ):
                self.fields.setItem(r, col, QTableWidgetItem(text))
            ftype = _combo(FIELD_TYPES, str(spec.get("type", "text")))
            kind = _combo(TOLERANCE_KINDS, _tolerance(spec.get("tolerance"))[0])
            for col, box in ((3, ftype), (4, kind)):
                box.currentIndexChanged.connect(lambda _i: self._changed())
                self.fields.setCellWidget(r, col, box)
        finally:
            self._loading = was
        self._changed()

    def _add_pass(self, p: dict[str, Any]) -> None:
        r = self.passes.rowCount()
        was = self._loading
        self._loading = True
        try:
            self.passes.insertRow(r)
            self._fill_pass(r, p)
        finally:
            self._loading = was
        self._changed()

    def _fill_pass(self, r: int, p: dict[str, Any]) -> None:
        for col, text in (
            (0, str(p.get("name", ""))),
            (2, _csv(p.get("keys"))),
            (3, _csv(p.get("require"))),
            (6, _csv(p.get("sum"))),
        ):
            self.passes.setItem(r, col, QTableWidgetItem(text))
        for col, options, value in (
            (1, ("pair", "aggregate"), str(p.get("kind", "pair"))),
            (4, ("skip", "report"), str(p.get("duplicates", "skip"))),
            (5, ("left", "right"), str(p.get("many", "left"))),
        ):
            box = _combo(options, value)
            box.currentIndexChanged.connect(lambda _i: self._changed())
            self.passes.setCellWidget(r, col, box)

    def _pass_at(self, r: int) -> dict[str, Any]:
        return {
            "name": self._text(self.passes, r, 0),
            "kind": self._combo(self.passes, r, 1),
            "keys": self._text(self.passes, r, 2),
            "require": self._text(self.passes, r, 3),
            "duplicates": self._combo(self.passes, r, 4),
            "many": self._combo(self.passes, r, 5),
            "sum": self._text(self.passes, r, 6),
        }

    def move_pass(self, step: int) -> None:
        """Swap the selected pass with its neighbour (the order passes run in)."""
        r = self.passes.currentRow()
        other = r + step
        if r < 0 or not 0 <= other < self.passes.rowCount():
            return
        a, b = self._pass_at(r), self._pass_at(other)
        self._loading = True
        try:
            self._fill_pass(r, b)
            self._fill_pass(other, a)
        finally:
            self._loading = False
        self.passes.selectRow(other)
        self._changed()

    def pass_names(self) -> list[str]:
        return [self._text(self.passes, r, 0) for r in range(self.passes.rowCount())]

    def set_tolerance(self, field: str, kind: str, value: str) -> None:
        """Set a field's tolerance as a user would (tests and keyboard helpers)."""
        for r in range(self.fields.rowCount()):
            if self._text(self.fields, r, 0) == field:
                box = self.fields.cellWidget(r, 4)
                assert isinstance(box, QComboBox)
                box.setCurrentIndex(box.findData(kind))
                self.fields.item(r, 5).setText(value)
                return
        raise KeyError(field)

    def _remove(self, table: QTableWidget) -> None:
        r = table.currentRow()
        if r >= 0:
            table.removeRow(r)
            self._changed()

    def _changed(self) -> None:
        if not self._loading:
            self.edited.emit()

    @staticmethod
    def _text(table: QTableWidget, r: int, c: int) -> str:
        item = table.item(r, c)
        return item.text().strip() if item is not None else ""

    @staticmethod
    def _combo(table: QTableWidget, r: int, c: int) -> str:
        box = table.cellWidget(r, c)
        return str(box.currentData()) if isinstance(box, QComboBox) else ""


class ReconDefinitionsDialog(QDialog):
    """The definitions, and the editor of the one selected, saved with its version."""

    #: The definitions were read and listed.
    definitions_shown = Signal(list)
    #: A save went through (the new DefinitionView) / was refused (the service's sentence).
    saved = Signal(object)
    refused = Signal(str)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setObjectName("operationDialog")
        self.setWindowTitle("Recon definitions")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.resize(1180, 720)
        self.definitions: list[Any] = []
        self.current: Any = None
        self._validator: Callable[[Any], Any] | None = None
        self._dirty = False
        self.can_edit = workspace.actor.can(Permission.EDIT_RULES)

        layout = QVBoxLayout(self)
        heading = QLabel("Recon definitions")
        heading.setObjectName("dialogTitle")
        layout.addWidget(heading)
        intro = QLabel(
            "Each reconciliation's two sides, key and compared fields with their tolerances, and the ordered "
            "passes. Supervisors edit; every edit is checked before it can be saved, and a save is refused if "
            "someone else saved the definition in the meantime."
        )
        intro.setObjectName("muted")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.list = QListWidget()
        self.list.setObjectName("definitionList")
        self.list.setMinimumWidth(260)
        self.list.currentRowChanged.connect(self._picked)
        split.addWidget(self.list)
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(8, 0, 0, 0)
        self.heading = QLabel("")
        self.heading.setObjectName("detailTitle")
        self.heading.setWordWrap(True)
        column.addWidget(self.heading)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.structure = StructureEditor()
        self.structure.edited.connect(self._structure_edited)
        self.json = QPlainTextEdit()
        self.json.setObjectName("definitionJson")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self.json.setFont(mono)
        self.json.textChanged.connect(self._json_edited)
        self.tabs.addTab(self.structure, "Structure")
        self.tabs.addTab(self.json, "JSON")
        self.tabs.currentChanged.connect(self._tab_changed)
        column.addWidget(self.tabs, 1)
        self.problem = QLabel("")
        self.problem.setObjectName("paneNotice")
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()
        column.addWidget(self.problem)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([280, 900])
        layout.addWidget(split, 1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Throw the edits away and show the definition as saved")
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.save)
        guard(
            self.save_button,
            workspace.actor,
            Permission.EDIT_RULES,
            "Save the definition (versioned, audited)",
        )
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        if not self.can_edit:
            self.json.setReadOnly(True)
            self.structure.setEnabled(False)
            self.structure.setToolTip(who_may(Permission.EDIT_RULES, workspace.actor))
            self.revert_button.hide()

        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(VALIDATE_DELAY_MS)
        self._check_timer.timeout.connect(self.validate)
        self._syncing = False
        self.reload()

    # --- reading --------------------------------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        self.ws.tasks.call(
            read_definitions,
            self.ws.db,
            self.ws.actor,
            on_done=lambda r: self._read(r, select),
            on_error=self._read_failed,
            label="Reading the recon definitions",
            owner=self,
        )

    def _read(self, result: object, select: str | None) -> None:
        assert isinstance(result, tuple)
        self.definitions, self._validator = list(result[0]), result[1]
        wanted = select or (self.current.name if self.current is not None else None)
        self.list.blockSignals(True)
        self.list.clear()
        row = 0
        for i, d in enumerate(self.definitions):
            item = QListWidgetItem(f"{d.name}\nv{d.version} · {d.left_source} vs {d.right_source}")
            item.setToolTip(d.description + ("" if d.is_active else " (switched off)"))
            if not d.is_active:
                item.setForeground(Qt.GlobalColor.gray)
            self.list.addItem(item)
            if d.name == wanted:
                row = i
        self.list.blockSignals(False)
        if self.definitions:
            self.list.setCurrentRow(row)
            self._picked(row)
        self.definitions_shown.emit(self.definitions)

    def _read_failed(self, failure: TaskFailure) -> None:
        self._show_problem(failure.message, "bad")

    def _picked(self, row: int) -> None:
        if not 0 <= row < len(self.definitions):
            return
        self.current = self.definitions[row]
        self.show_definition(self.current.config)

    def choose(self, name: str) -> None:
        for i, d in enumerate(self.definitions):
            if d.name == name:
                self.list.setCurrentRow(i)
                return
        raise KeyError(name)

    def show_definition(self, config: dict[str, Any]) -> None:
        d = self.current
        self.heading.setText(
            f"<b>{d.name}</b> — version {d.version}{'' if d.is_active else ', switched off'}<br>"
            f"<span style='color:#616e7c'>{d.description}</span>"
        )
        self._syncing = True
        try:
            self.structure.load(config)
            self.json.setPlainText(json.dumps(config, indent=2, ensure_ascii=False))
        finally:
            self._syncing = False
        self._dirty = False
        self.validate()

    def revert(self) -> None:
        if self.current is not None:
            self.show_definition(self.current.config)

    # --- editing and checking -------------------------------------------------------------------------------------

    def _structure_edited(self) -> None:
        if self._syncing:
            return
        self._dirty = True
        self._check_timer.start()

    def _json_edited(self) -> None:
        if self._syncing:
            return
        self._dirty = True
        self._check_timer.start()

    def _tab_changed(self, index: int) -> None:
        """Carry the edits across: structure -> JSON always; JSON -> structure when the text is valid JSON."""
        if self.current is None:
            return
        self._syncing = True
        try:
            if self.tabs.widget(index) is self.json:
                self.json.setPlainText(json.dumps(self.structure.config(), indent=2, ensure_ascii=False))
            else:
                try:
                    parsed = json.loads(self.json.toPlainText())
                except json.JSONDecodeError:
                    self.tabs.blockSignals(True)
                    self.tabs.setCurrentWidget(self.json)
                    self.tabs.blockSignals(False)
                    self.validate()
                    return
                if isinstance(parsed, dict):
                    self.structure.load(parsed)
        finally:
            self._syncing = False

    def edited_config(self) -> tuple[dict[str, Any] | None, str | None]:
        """(config, None), or (None, the problem) when the JSON text does not parse."""
        if self.tabs.currentWidget() is self.json:
            text = self.json.toPlainText()
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                return None, f"Line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})."
            if not isinstance(value, dict):
                return None, "The configuration is a JSON object ({ … })."
            return value, None
        return self.structure.config(), None

    def validate(self) -> str | None:
        """Check the edited config with the service's validator; show and return the first problem (None: fine)."""
        config, problem = self.edited_config()
        if problem is None and self._validator is not None:
            try:
                self._validator(config)
            except Exception as err:  # ConfigError (a ValidationFailed): its text names the field at fault
                problem = str(err)
        if problem:
            self._show_problem(problem, "bad")
        elif self._dirty:
            self._show_problem("The edited definition is valid; Save stores it as a new version.", "ok")
        else:
            self.problem.hide()
        self.save_button.setEnabled(self.can_edit and problem is None and self._dirty)
        return problem

    def _show_problem(self, text: str, tone: str) -> None:
        self.problem.setText(text)
        self.problem.setProperty("tone", tone)
        self.problem.style().unpolish(self.problem)
        self.problem.style().polish(self.problem)
        self.problem.show()

    def problem_text(self) -> str:
        return self.problem.text() if self.problem.isVisibleTo(self) else ""

    # --- saving ---------------------------------------------------------------------------------------------------

    def save(self) -> None:
        if not self.can_edit:
            self._show_problem(who_may(Permission.EDIT_RULES, self.ws.actor), "bad")
            return
        if self.current is None or self.validate() is not None:
            return
        config, _ = self.edited_config()
        d = self.current
        self.save_button.setEnabled(False)
        self.ws.tasks.call(
            save,
            self.ws.db,
            self.ws.actor,
            d.id,
            config,
            d.version,
            on_done=self._saved,
            on_error=self._save_refused,
            label=f"Saving the recon definition {d.name}",
            owner=self,
        )

    def _saved(self, view: Any) -> None:
        self.current = view
        for i, d in enumerate(self.definitions):
            if d.id == view.id:
                self.definitions[i] = view
                self.list.item(i).setText(
                    f"{view.name}\nv{view.version} · {view.left_source} vs {view.right_source}"
                )
        self.show_definition(view.config)
        self._show_problem(f"Saved: {view.name} is now at version {view.version}.", "ok")
        self.saved.emit(view)

    def _save_refused(self, failure: TaskFailure) -> None:
        self._show_problem(f"Not saved: {failure.message}", "bad")
        self.save_button.setEnabled(self.can_edit)
        self.refused.emit(failure.message)
