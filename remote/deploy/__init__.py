"""Serving on the box: model slots behind the nginx router, blue-green and rollback,
and the TLS front door that exposes them (and MLflow) on request."""
