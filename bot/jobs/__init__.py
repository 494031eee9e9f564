"""Background work: the transactional outbox, its delivery, reminders and expiry."""
