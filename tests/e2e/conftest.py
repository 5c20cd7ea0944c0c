"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import datarobot
import pytest
from datarobot_predict import deployment as dr_deployment


@pytest.fixture
def dr_client(base_url: str) -> Iterator[None]:
    """Point datarobot-predict at the module's server (its ``base_url``) without its /version/ round trip."""
    datarobot.client.set_client(datarobot.rest.RESTClientObject(auth="tok", endpoint=f"{base_url}/api/v2"))
    dr_deployment.clear_context()
    yield
    dr_deployment.clear_context()
