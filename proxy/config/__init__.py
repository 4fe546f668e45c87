"""What a valid configuration is (schema), and the one function that judges one (load)."""
