"""Tests of bot.notify: rendering, SMTP against a real aiosmtpd, files, SMS over real HTTP."""
