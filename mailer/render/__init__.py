"""Jinja2 → MJML → HTML → inline CSS; the plain-text part; per-recipient slots."""
