"""`flask demo`: one whole warm transfer on a local sandbox, narrated step by step."""
