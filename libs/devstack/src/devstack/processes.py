"""Child processes of the dev stack: started with logs to a file, stopped by pid, never by name."""

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ManagedProcess:
    """One child process and where its output goes."""

    name: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the child in its own process group, output appended to `log_file`."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C reaches the stack, which stops children in order
            )

    @property
    def pid(self) -> int:
        """The child's pid."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    def alive(self) -> bool:
        """True while the child runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the child, SIGKILL it after `timeout` seconds, and reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def python_module(module: str, *args: str) -> list[str]:
    """Argv running `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]
