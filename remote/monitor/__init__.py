"""Watching the box's models: drift reports, labels and their schedule. (The box's own
idle auto-stop is remote/box/autostop.py.)"""
