"""The wire contract of Hookline: the models every service reads and writes, and the broker names.

Services share only this package and `services.runtime`; they never import each other.
"""
