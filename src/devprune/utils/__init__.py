"""Small helpers shared by several modules (no algorithm code)."""
