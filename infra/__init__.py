"""The Pulumi program: what exists in AWS for one ML box. It never connects over SSH."""
