"""Batch jobs run from the command line or a scheduler (the nightly sync)."""
