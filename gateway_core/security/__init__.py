"""Edge security: request authentication (JWT), authorization policies and their shared facts."""
