"""The project layer: project.yaml loaded, validated and expanded, for every backend."""
