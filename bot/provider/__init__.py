"""Async client for any Certyneo-compatible API: the only way the bot reaches the service."""
