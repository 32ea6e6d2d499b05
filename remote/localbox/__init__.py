"""The machinery behind the `local` provider: a systemd-nspawn box on this machine.

`rootfs` builds (and caches) the box's Debian tree, `netns` gives it a network namespace
with its own address and NAT, `nspawn` boots and powers it off. `run` is the one way
these modules call a command.
"""
