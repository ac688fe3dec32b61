"""What every Hookline process shares: settings, logging, the broker connection, the HTTP edge
(health, readiness, metrics) and the readers of the broker's streams."""
