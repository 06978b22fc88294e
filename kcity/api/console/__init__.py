"""The firm's console under `/console/`: server-rendered pages, English and Korean.

A firm signs in with its operator token (an evaluator with theirs) and sees its pilot's
devices, silent ones first, its rejected payloads with their reasons, checks a corrected
payload against ingest's own validation, and rotates a device's credential. No separate
frontend build: Jinja2 templates, semantic HTML, a few lines of plain JavaScript.
"""

from kcity.api.console.pages import router

__all__ = ["router"]
