"""The embedded peers benchmarks run against: PostgreSQL and Tansu, started once per run."""

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.kafka import TansuBroker, start_tansu
from devstack.postgres import EmbeddedPostgres, start_postgres
from teamkit.settings import KafkaSettings


@dataclass
class BenchEnv:
    """Running peers plus helpers to make isolated databases and topic prefixes."""

    postgres: EmbeddedPostgres
    broker: TansuBroker

    def new_database(self, prefix: str) -> str:
        """Create a fresh database; return its asyncpg SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.postgres.create_database(name)
        return self.postgres.url(name)

    def kafka_settings(self, **overrides: object) -> KafkaSettings:
        """Settings with a fresh topic prefix and quick group timings."""
        values: dict[str, object] = {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": f"b{uuid.uuid4().hex[:8]}.",
            "KAFKA_SESSION_TIMEOUT_MS": 2000,
            "KAFKA_HEARTBEAT_INTERVAL_MS": 500,
        }
        values.update(overrides)
        return KafkaSettings.model_validate(values)

    def pg_version(self) -> str:
        """The server's version string."""
        return self.postgres.server.psql("SHOW server_version;").splitlines()[2].strip()


@contextmanager
def bench_env() -> Iterator[BenchEnv]:
    """Start PostgreSQL and Tansu in a temporary folder; stop and remove them afterwards."""
    root = Path(tempfile.mkdtemp(prefix="team-bench-"))
    postgres = start_postgres(root / "pgdata")
    broker = start_tansu()
    try:
        yield BenchEnv(postgres=postgres, broker=broker)
    finally:
        broker.stop()
        postgres.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
