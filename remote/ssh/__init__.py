"""Reaching the box over SSH: the ~/.ssh entry, pinned host keys, the key pair,
connections and tunnels."""
