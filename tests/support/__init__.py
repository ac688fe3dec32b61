"""What the integration and end-to-end tests share: a recording receiver, broker clean-up,
and service processes."""
