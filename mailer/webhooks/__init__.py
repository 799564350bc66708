"""Webhooks: the receivers (endpoints) and the worker that posts the outbox to them (delivery).

Events are written by mailer.events in the transaction of their cause; this package only
manages receivers and posts what waits, so it needs nothing of the packages that emit.
"""
