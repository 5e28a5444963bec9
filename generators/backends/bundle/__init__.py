"""The bundle backend."""
