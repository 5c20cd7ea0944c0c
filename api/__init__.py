"""tsengine's HTTP layer: DataRobot predApi v1.0 over the deployment registry.

``create_app(settings)`` builds the ASGI app; ``api.server.serve`` runs it with
uvicorn.  No forecasting happens here: requests are parsed, handed to the core,
and the core's rendering is returned with DataRobot's headers.
"""

from __future__ import annotations

from api.app import create_app
from api.settings import Settings

__all__ = ["Settings", "create_app"]
