"""Recipes (YAML experiments) and the resumable pipeline that runs them."""
