"""Everything that acts on an existing box: providers, the ssh entry, Fabric tasks."""
