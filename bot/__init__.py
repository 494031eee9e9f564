"""signbot: e-signature for teams that live in Slack, with a Certyneo-compatible REST API."""

__version__ = "0.1.0"
