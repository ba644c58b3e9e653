"""The trade blotter's widgets: filter bar, column chooser, saved views, detail panel, repair and import dialogs.

The pane that puts them together is ``app/views/panes/trade_blotter.py``; its table model is
``app/views/qt_models/blotter_model.py``.
"""
