"""Plots and widgets (matplotlib figures built without pyplot)."""
