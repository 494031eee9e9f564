"""Notifications: email (SMTP + Jinja2) and SMS."""
