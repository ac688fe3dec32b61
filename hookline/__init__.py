"""Hookline's operator tools: the `hookline` command line."""
