"""The Slack bot (a client of the signing service through bot.provider only)."""
