"""Futures give-ups and out-trades from the GUI: raise one, and work one from the settlement queue.

- :class:`RaiseExceptionDialog` (Operations menu, and the queue's context menu): a give-up moves a futures trade to
  another clearing broker and waits for the take-up; an out-trade records that the counterparty does not recognise
  the trade. Either becomes an item of its own in the settlement queue, which is brought forward showing it.
- :class:`WorkExceptionDialog` (the queue's context menu on a GIVE…/OUTT… item): the exception's state and the
  actions its state allows — a give-up is acknowledged with the broker's take-up reference, rejected, re-sent or
  withdrawn; an out-trade is acknowledged, resolved as recognised or as not ours (the trade is cancelled and its
  movements reversed), or withdrawn. Actions the state does not allow are disabled saying why; a role that may not
  work settlement items sees them all disabled with who may.

Everything runs on the TaskRunner through :mod:`app.services.settlement.clearing`; a refusal shows the service's sentence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QLineEdit, QPushButton, QWidget

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog, guard, who_may

if TYPE_CHECKING:
    from app.views.panes.base import Workspace
    from app.views.tasks import TaskContext, TaskFailure

GIVE_UP = "GIVE_UP"
OUT_TRADE = "OUT_TRADE"
KIND_WORDS = {GIVE_UP: "give-up", OUT_TRADE: "out-trade"}
#: Instruction references of clearing exceptions start with these (fails._exception_row names them so).
PREFIXES = {"GIVE": GIVE_UP, "OUTT": OUT_TRADE}


def may_work(actor: Any) -> bool:
    """Who the lifecycle lets move these items (``lifecycle.require_lifecycle_actor``)."""
    return any(actor.can(p) for p in (Permission.WORK_ITEMS, Permission.IMPORT, Permission.RUN_PROCESSES))


def kind_of_ref(instruction_ref: str | None) -> str | None:
    return PREFIXES.get((instruction_ref or "")[:4])


def _api() -> Any:
    # Imported on the worker thread: the fails service pulls in pandas.
    from app.services.settlement import clearing as clearing_api

    return clearing_api


def _raise(
    ctx: TaskContext, db: Any, actor: Any, kind: str, trade_ref: str, to_id: int | None, reason: str
) -> Any:
    ctx.progress(0, 0, f"Raising the {KIND_WORDS[kind]}")
    api = _api()
    if kind == GIVE_UP:
        if to_id is None:
            from app.services.errors import ValidationFailed

            raise ValidationFailed("Choose the clearing broker to give the trade up to.")
        return api.raise_give_up(db, actor, trade_ref, to_id, reason)
    return api.raise_out_trade(db, actor, trade_ref, reason)


def _read_counterparties(db: Any, actor: Any) -> Any:
    return _api().counterparties(db, actor)


def _read_exception(db: Any, actor: Any, instruction_id: int) -> Any:
    return _api().exception_of(db, actor, instruction_id)


def _act(ctx: TaskContext, db: Any, actor: Any, verb: str, exception_id: int, args: tuple[Any, ...]) -> Any:
    ctx.progress(0, 0, verb.replace("_", " ").capitalize())
    return verb, _api().act(db, actor, verb, exception_id, *args)


class RaiseExceptionDialog(OperationDialog):
    run_label = "Raise"
    task_label = "Raising a clearing exception"

    def __init__(self, workspace: Workspace, kind: str, parent: QWidget | None = None) -> None:
        self.kind = kind
        self.title = "Raise a give-up" if kind == GIVE_UP else "Raise an out-trade"
        self.intro = (
            "Give a futures trade up to another clearing broker: the trade moves once the broker acknowledges the "
            "take-up."
            if kind == GIVE_UP
            else "The counterparty does not recognise a futures trade: the out-trade is worked in the settlement "
            "queue until it is recognised, or the trade is cancelled as not ours."
        )
        super().__init__(workspace, parent)
        if not may_work(workspace.actor):
            self.run_button.setEnabled(False)
            self.run_button.setToolTip(who_may(Permission.WORK_ITEMS, workspace.actor))
            self.show_notice(who_may(Permission.WORK_ITEMS, workspace.actor), "warn")
        if kind == GIVE_UP:
            self.ws.tasks.call(
                _read_counterparties,
                workspace.db,
                workspace.actor,
                on_done=self._counterparties,
                on_error=lambda f: self.show_notice(f.message, "bad"),
                label="Reading the counterparties",
                owner=self,
            )

    def build_inputs(self) -> None:
        self.trade_ref = QLineEdit()
        self.trade_ref.setPlaceholderText("the futures trade's reference, as in the blotter")
        self.form.addRow("Trade", self.trade_ref)
        self.broker = QComboBox()
        self.broker.addItem("Reading the counterparties…", None)
        if self.kind == GIVE_UP:
            self.form.addRow("Give up to", self.broker)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("why (shown on the item and in its history)")
        self.form.addRow("Reason", self.reason)

    def _counterparties(self, rows: object) -> None:
        assert isinstance(rows, list)
        self.broker.clear()
        self.broker.addItem("— choose the clearing broker —", None)
        for i, code, name in rows:
            self.broker.addItem(f"{code} — {name}", i)

    def choose_broker(self, code: str) -> None:
        for i in range(self.broker.count()):
            if self.broker.itemText(i).startswith(f"{code} "):
                self.broker.setCurrentIndex(i)
                return
        raise KeyError(code)

    def check_inputs(self) -> str | None:
        if not may_work(self.ws.actor):
            return who_may(Permission.WORK_ITEMS, self.ws.actor)
        if not self.trade_ref.text().strip():
            return "Give the reference of the futures trade."
        if self.kind == GIVE_UP and self.broker.currentData() is None:
            return "Choose the clearing broker to give the trade up to."
        return None

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        return _raise, (
            self.ws.db,
            self.ws.actor,
            self.kind,
            self.trade_ref.text().strip(),
            self.broker.currentData(),
            self.reason.text().strip(),
        )

    def show_result(self, exc: Any) -> None:
        words = KIND_WORDS[self.kind]
        where = f" from {exc['from']} to {exc['to']}" if self.kind == GIVE_UP else ""
        self.set_summary(
            f"The {words} #{exc['id']} of trade <b>{exc['trade_ref']}</b>{where} is {exc['state']}; it is an item "
            "of its own in the settlement queue."
        )
        self.open_pane.emit(
            "settlement_queue",
            {"ids": [exc["instruction_id"]], "title": f"{words.capitalize()} of {exc['trade_ref']}"},
        )


class WorkExceptionDialog(OperationDialog):
    """The give-up or out-trade behind one queue item, with the actions its state allows."""

    title = "Give-up or out-trade"
    intro = "Work the futures clearing exception behind this settlement-queue item."
    run_label = "Reload"
    task_label = "Working a clearing exception"

    #: The exception was read (its dict, None for a plain instruction).
    exception_shown = Signal(object)

    def __init__(self, workspace: Workspace, instruction_id: int, parent: QWidget | None = None) -> None:
        self.instruction_id = instruction_id
        self.exception: dict[str, Any] | None = None
        super().__init__(workspace, parent)
        self.run_button.hide()
        self.reload()

    def build_inputs(self) -> None:
        self.state_label = QLabel("Reading…")
        self.state_label.setWordWrap(True)
        self.state_label.setTextFormat(self.summary.textFormat())
        self.form.addRow("", self.state_label)
        self.reference = QLineEdit()
        self.reference.setPlaceholderText("the broker's take-up reference / the counterparty's reference")
        self.form.addRow("Reference", self.reference)
        self.note = QLineEdit()
        self.note.setPlaceholderText("reason or note (needed to reject or withdraw)")
        self.form.addRow("Reason / note", self.note)
        grid = QWidget()
        layout = QGridLayout(grid)
        layout.setContentsMargins(0, 0, 0, 0)
        self.buttons: dict[str, QPushButton] = {}
        specs = (
            ("acknowledge_give_up", "Acknowledge take-up", GIVE_UP),
            ("reject_give_up", "Reject take-up", GIVE_UP),
            ("resend_give_up", "Re-send", GIVE_UP),
            ("acknowledge_out_trade", "Acknowledge", OUT_TRADE),
            ("recognised", "Resolve: recognised", OUT_TRADE),
            ("not_ours", "Resolve: not ours (cancel the trade)", OUT_TRADE),
            ("cancel_exception", "Withdraw", None),
        )
        for n, (verb, text, _kind) in enumerate(specs):
            b = QPushButton(text)
            b.clicked.connect(lambda _c=False, v=verb: self.do(v))
            b.hide()
            layout.addWidget(b, n // 4, n % 4)
            self.buttons[verb] = b
        self._kinds = {verb: kind for verb, _t, kind in specs}
        self.form.addRow("Actions", grid)

    def reload(self) -> None:
        self.ws.tasks.call(
            _read_exception,
            self.ws.db,
            self.ws.actor,
            self.instruction_id,
            on_done=self._shown,
            on_error=lambda f: self.show_notice(f.message, "bad"),
            label="Reading the clearing exception",
            owner=self,
        )

    def _shown(self, exc: object) -> None:
        self.exception = exc if isinstance(exc, dict) else None
        if self.exception is None:
            self.state_label.setText("This settlement instruction is not a give-up or an out-trade.")
            for b in self.buttons.values():
                b.hide()
            self.exception_shown.emit(None)
            return
        e = self.exception
        words = KIND_WORDS[e["kind"]]
        route = f", {e['from']} → {e['to']}" if e["kind"] == GIVE_UP else f", counterparty {e['from']}"
        extra = f"; reference {e['ack_ref']}" if e["ack_ref"] else ""
        extra += f"; resolved as {e['resolution']}" if e["resolution"] else ""
        self.state_label.setText(
            f"<b>{words.capitalize()} #{e['id']}</b> of trade <b>{e['trade_ref']}</b>{route}: "
            f"<b>{e['state']}</b>{extra}" + (f"<br>{e['reason']}" if e["reason"] else "")
        )
        self._enable()
        self.exception_shown.emit(e)

    def _allowed(self, verb: str) -> tuple[bool, str]:
        e = self.exception
        assert e is not None
        state, kind = e["state"], e["kind"]
        needs: dict[str, tuple[str, ...]] = {
            "acknowledge_give_up": ("RAISED",),
            "reject_give_up": ("RAISED",),
            "resend_give_up": ("REJECTED",),
            "acknowledge_out_trade": ("RAISED",),
            "recognised": ("RAISED", "ACKNOWLEDGED"),
            "not_ours": ("RAISED", "ACKNOWLEDGED"),
            "cancel_exception": ("RAISED", "REJECTED", "ACKNOWLEDGED")
            if kind == OUT_TRADE
            else ("RAISED", "REJECTED"),
        }
        if state in needs[verb]:
            return True, ""
        return False, f"The {KIND_WORDS[kind]} is {state}; this needs it {' or '.join(needs[verb])}."

    def _enable(self) -> None:
        e = self.exception
        assert e is not None
        allowed_role = may_work(self.ws.actor)
        for verb, b in self.buttons.items():
            kind = self._kinds[verb]
            b.setVisible(kind is None or kind == e["kind"])
            ok, why = self._allowed(verb)
            if not allowed_role:
                b.setEnabled(False)
                b.setToolTip(who_may(Permission.WORK_ITEMS, self.ws.actor))
            else:
                b.setEnabled(ok)
                b.setToolTip(why or b.text())

    def do(self, verb: str) -> None:
        """Run one action on the exception (the inputs it needs are checked first)."""
        e = self.exception
        if e is None or self.running:
            return
        if not may_work(self.ws.actor):
            self.show_notice(who_may(Permission.WORK_ITEMS, self.ws.actor), "bad")
            return
        ref, note = self.reference.text().strip(), self.note.text().strip()
        args: tuple[Any, ...]
        service_verb = verb
        if verb == "acknowledge_give_up":
            if not ref:
                self.show_notice("Give the clearing broker's take-up reference.", "bad")
                return
            args = (ref,)
        elif verb in ("reject_give_up", "cancel_exception"):
            if not note:
                self.show_notice("Give the reason.", "bad")
                return
            args = (note,)
        elif verb in ("resend_give_up",):
            args = (note,)
        elif verb == "acknowledge_out_trade":
            args = (ref,)
        else:  # recognised / not_ours
            service_verb = "resolve_out_trade"
            args = ("RECOGNISED" if verb == "recognised" else "NOT_OURS", note)
        self._pending = (service_verb, e["id"], args)
        self.start()

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        verb, exception_id, args = self._pending
        return _act, (self.ws.db, self.ws.actor, verb, exception_id, args)

    def show_result(self, result: Any) -> None:
        verb, exc = result
        from_words = {
            "acknowledge_give_up": f"Take-up acknowledged: trade {exc['trade_ref']} now clears with {exc['to']}.",
            "reject_give_up": "Take-up rejected: the give-up fails (REJT) until it is re-sent or withdrawn.",
            "resend_give_up": f"Give-up re-sent to {exc['to']}, awaiting take-up.",
            "acknowledge_out_trade": "Out-trade query acknowledged by the counterparty; the item stays failed.",
            "resolve_out_trade": f"Out-trade resolved as {exc['resolution']}.",
            "cancel_exception": f"The {KIND_WORDS[exc['kind']]} was withdrawn.",
        }
        self.set_summary(from_words.get(verb, "Done."))
        self._shown(exc)

    def _failed(self, failure: TaskFailure) -> None:
        super()._failed(failure)
        self.run_button.hide()

    def _idle(self) -> None:
        super()._idle()
        self.run_button.hide()


def raise_entry(workspace: Workspace, action: Any, kind: str) -> None:
    """Disable a "Raise …" menu action for roles that may not work settlement items (with who may)."""
    allowed = may_work(workspace.actor)
    action.setEnabled(allowed)
    action.setToolTip(
        f"Raise a futures {KIND_WORDS[kind]}" if allowed else who_may(Permission.WORK_ITEMS, workspace.actor)
    )


__all__ = ["RaiseExceptionDialog", "WorkExceptionDialog", "guard", "kind_of_ref", "raise_entry"]
