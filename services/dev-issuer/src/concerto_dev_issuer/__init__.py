"""A development identity provider for the local stack (see app.py)."""
