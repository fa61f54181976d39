"""Analyses of the published series (SCIENCE.md §4)."""
