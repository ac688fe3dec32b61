"""The `hookline` command line: the webhooks, history, dead letters and quarantine APIs, and
publishing events, for operators at a terminal and for scripts (`--json`)."""
