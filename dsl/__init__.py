"""The policy language: parse, check, compile, evaluate, format and test policy files."""
