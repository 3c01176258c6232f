"""verl glue: the reward manager and the plugin entry point. Everything verl-specific lives here."""
