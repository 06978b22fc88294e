"""Evaluation reports: what `kcity report` and the API's report route render.

data.py (the few series reports read beyond the analyses), figures.py (matplotlib),
i18n.py (labels in English and Korean), render.py (HTML and PDF), templates/ (Jinja2).
May import the analyses, registry and errors of the shell; never `kcity.api` or the stack.
"""
