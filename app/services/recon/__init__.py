"""Reconciliation: definition configs, source readers, the vectorised matcher, runs with the break lifecycle, and
ad hoc two-file recon. See run.py for the rules clerks rely on."""
