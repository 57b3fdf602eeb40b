"""Set-up, demo and test harness scripts (run as `python -m scripts.<name>` from the repository root)."""
