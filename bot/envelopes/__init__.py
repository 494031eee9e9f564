"""Envelopes: the pure lifecycle state machine, models, service, routes and schemas."""
