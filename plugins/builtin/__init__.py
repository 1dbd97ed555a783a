"""The built-in signal providers, registered through the same entry points as plugins."""
