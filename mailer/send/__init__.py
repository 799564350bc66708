"""Sends: snapshot, workers, per-recipient messages, DKIM, reports."""
