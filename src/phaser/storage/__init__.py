"""Persistence: the Redis job store, result stores and the event hub."""
