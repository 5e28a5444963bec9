"""The sync backend."""
