"""Settlement: instructions generated from validated trades (gross or netted), their lifecycle, the securities and
cash movements a settlement posts, and the fails worked by clerks (penalties, give-ups, out-trades).

Modules: ``lifecycle`` (allowed status transitions, audited), ``movements`` (apply a (partial) settlement, the
positions/cash invariant), ``generate`` (instructions and netting, un-netting), ``fails`` (ageing, CSDR penalties,
give-ups and out-trades).
"""
