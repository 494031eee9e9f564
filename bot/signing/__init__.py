"""The signer ceremony: tokens, pages, stamping, sealing and the audit trail."""
