"""Acting on the box: the one way to run a command, upload a file, manage a unit,
render a template, fill a virtualenv and ship the agent."""
