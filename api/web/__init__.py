"""The web pages served beside the API (see :mod:`api.web.pages`)."""

from api.web.pages import add_web_routes

__all__ = ["add_web_routes"]
