"""Readiness checks: what must be true of a built mailing before it may go to real people."""
