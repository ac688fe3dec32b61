"""Tools that ship with Hookline: the quickstart's receiver."""
