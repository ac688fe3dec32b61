"""The router: the webhooks API, matching events to webhooks, and fan-out to the senders."""
