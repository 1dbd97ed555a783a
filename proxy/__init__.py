"""The runtime: the edge proxy, its adapters, decisions, state, events and learning."""
