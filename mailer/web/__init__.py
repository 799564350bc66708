"""The web app: subscription pages and the one-click unsubscribe."""
