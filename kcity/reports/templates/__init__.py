"""Jinja2 templates and stylesheet of the evaluation reports (package data)."""
