"""The JSON API for other systems (a bearer token or a supervisor's session)."""
