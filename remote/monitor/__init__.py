"""Watching the box once it runs: the idle auto-stop (idle.py)."""
