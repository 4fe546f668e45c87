"""Who is asking and how often: consumer keys and allowlists, feed tokens, the admin key, rates."""
