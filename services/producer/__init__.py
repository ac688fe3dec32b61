"""The producer: the Python SDK for upstream systems and the HTTP ingest gateway (POST /events)."""
