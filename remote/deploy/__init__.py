"""Serving on the box: model slots behind the nginx router, blue-green and rollback."""
