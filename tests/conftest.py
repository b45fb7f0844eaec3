"""Shared pytest set-up: quiet asyncio logging, and a throwaway PostgreSQL server for the tests
that need a real one (``postgres_url``)."""

import logging

import pytest

logging.getLogger("asyncio").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def postgres_url():
    """A SQLAlchemy URL (postgresql+psycopg://) of a throwaway PostgreSQL server, one for the whole
    session (callcenter.storage.postgres_server). Missing server programs are an error, not a skip:
    scripts/install provides them, so a skip would only hide a broken install."""
    from callcenter.storage.postgres_server import PostgresServer

    server = PostgresServer(database="callcenter_test")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
