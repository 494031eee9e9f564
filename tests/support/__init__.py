"""Shared test machinery: servers, databases and clients (real ones, no mocks of our code)."""
