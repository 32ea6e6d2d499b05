"""Models on the box, and the TLS front door that exposes them (and MLflow) on request."""
