"""The images backend."""
