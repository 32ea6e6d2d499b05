"""Monitoring the box's models: drift reports, labels, and the schedule that runs them."""
