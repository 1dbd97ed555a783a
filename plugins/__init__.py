"""Signal providers: the public provider API, the registry and the built-in providers."""
