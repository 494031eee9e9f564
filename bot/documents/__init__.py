"""Uploaded documents: receiving, checking, converting and storing them."""
