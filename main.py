"""Start OpsDesk: ``python main.py`` opens the workstation; ``python main.py COMMAND ...`` is the ``opsdesk`` CLI."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
