"""Checks run against a live cluster from the outside: fault helpers, a request loop, the openai client."""
