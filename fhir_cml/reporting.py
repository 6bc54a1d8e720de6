"""Renders assessments for people and programs (the JSON contract and plain text)."""
