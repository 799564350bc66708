"""Bounces and RCPT answers in, suppressions out."""
