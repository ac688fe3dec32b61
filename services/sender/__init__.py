"""The sender: signed HTTP delivery, retries through the retry tiers, dead letters."""
