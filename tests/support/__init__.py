"""Shared test support: fixtures and helpers used across the suite."""
