"""Operations: GUI entries for the settlement and reconciliation processes that have no pane of their own.

Each dialog is one small module running one service through the TaskRunner (never on the GUI thread), with progress
where the work is long, a result summary when it ends, and the service's own sentence when it refuses (a permission,
a bad file). ``menu.build_operations_menu`` puts them in the main window's Operations menu; ``drops`` lets files
dropped on the settlement queue and the break investigation panes go straight into the matching import.
"""
