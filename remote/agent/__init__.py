"""Code that runs on the box itself.

Each module here is copied to the box as a single file and run there by the box's own
Python, so it imports only the standard library (plus, lazily, what the box's MLflow
environment provides) and nothing from the controller side.
"""
