"""HTTP plumbing shared by the routers: auth, limits, problems, pagination, idempotency."""
