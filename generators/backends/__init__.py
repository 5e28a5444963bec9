"""Backends: one package per cluster kind and per artifact family."""
