"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.smtp_server import SMTPTestServer


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SMTPTestServer]:
    """A started test SMTP server; faults via indirect parametrisation with SMTPTestServer's
    keyword arguments, e.g. `@pytest.mark.parametrize("smtp_server", [{"drop": 0.5}],
    indirect=True)`."""
    with SMTPTestServer(**getattr(request, "param", {})) as server:
        yield server
