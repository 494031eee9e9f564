"""Outbound webhooks: endpoints, signatures, deliveries."""
