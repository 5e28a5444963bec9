"""jobpack: compile one project.yaml into a bundle of portable shell artifacts."""

__version__ = "0.1.0"
