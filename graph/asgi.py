"""ASGI entry point for uvicorn workers: ``uvicorn graph.asgi:app``."""

from graph.app import create_app

app = create_app()
