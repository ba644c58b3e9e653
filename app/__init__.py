"""OpsDesk: a back-office operations workstation for a securities broker."""

__version__ = "0.1.0"
