"""The service layer: plain Python, no Qt. Every business rule, permission check, transaction and audit entry.

Each public function takes the ``Database`` and the acting user (``Actor``) first; the CLI, the GUI's background
operations and the tests all call the same functions.
"""
