"""Scripted transaction scenarios: the file format, the runner, reports and load mode."""
