"""Lists import/export, subscribe/confirm/unsubscribe/preferences/erase, tokens."""
