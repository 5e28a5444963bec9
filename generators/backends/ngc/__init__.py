"""The ngc backend."""
