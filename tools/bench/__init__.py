"""Measurements of a running Hookline, made from a checkout: not tests, they assert nothing."""
