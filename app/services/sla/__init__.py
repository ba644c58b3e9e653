"""SLA monitoring: rules (``rules``), vectorised evaluation with state history (``evaluate``), KPIs (``kpis``) and
per-user alerts (``alerts``). See each module's docstring; ``evaluate.seed_demo`` fills the demo book."""
