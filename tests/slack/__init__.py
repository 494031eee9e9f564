"""Tests of the Slack bot: pure views and parsing, the fake Web API, signed requests."""
