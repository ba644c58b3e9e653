"""The human side of reconciliation: working breaks (claim, assign, categorise, comment, attach, history), the
candidate matches a clerk picks from, and corrections under four-eyes control.

* ``breaks``      — the break lifecycle done by people (``BREAK_TRANSITIONS``), claims, history.
* ``comments``    — comments and attachments on any work item; work-item addressing.
* ``corrections`` — propose / approve / reject / withdraw / bulk decide, the approvals inbox, thresholds.
* ``candidates``  — open breaks of the other side ranked by how close they are to a missing record.

The recon engine (services.recon) creates breaks and closes or reopens them by itself; it moves their status with
``breaks.move_break`` so the same lifecycle rules and audit entries apply.
"""
