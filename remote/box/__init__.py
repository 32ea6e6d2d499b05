"""The box itself, from the controller: starting it and keeping `ssh <name>` pointing at
it (start.py), how `fab box.status` shows it (status.py), and its idle auto-stop, whose
decision the agent takes on the box (autostop.py)."""
