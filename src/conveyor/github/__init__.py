"""Talking to GitHub: the REST client (tokens, App authentication, rate limits) and what conveyor reads."""
