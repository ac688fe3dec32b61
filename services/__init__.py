"""Hookline's services: producer, router and sender, and the runtime they share."""
