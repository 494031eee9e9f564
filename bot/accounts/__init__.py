"""Tenants (accounts and their workspaces) and API keys."""
