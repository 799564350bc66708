"""The API's operations in one list, and its routes: mailer.web mounts them at urls.API."""

from __future__ import annotations

from starlette.routing import Mount

from mailer import urls
from mailer.api import campaigns, openapi, signup, subscribers
from mailer.api.spec import Api, Operation

OPERATIONS: list[Operation] = [*subscribers.OPERATIONS, *campaigns.OPERATIONS,
                               *signup.OPERATIONS, *openapi.OPERATIONS]
API = Api(OPERATIONS, openapi.describe)


def mount() -> Mount:
    """The API at urls.API; its handlers find the Host on `app.state.api`."""
    return API.mount(urls.API)
