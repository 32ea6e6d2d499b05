"""Watching the box's models and the box itself: drift reports, labels, their schedule,
and the idle auto-stop (idle.py)."""
