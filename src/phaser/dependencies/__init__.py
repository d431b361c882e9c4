"""FastAPI dependencies: the request context, identity and services."""
