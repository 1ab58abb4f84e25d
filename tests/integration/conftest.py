"""A real ``redis-server`` for the integration tests (no mock stands in for it).

The server runs on a free loopback port, without persistence (``--save '' --appendonly
no``), and is stopped after the tests of the module. ``make test`` installs
``redis-server`` first when it is missing (``scripts/ensure-redis-server.sh``); without
it these tests fail, they are not skipped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis


class RedisServer:
    """One ``redis-server`` process on a fixed loopback port, stoppable and restartable."""

    def __init__(self, executable: str, port: int) -> None:
        self.executable = executable
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - the redis-server found on PATH
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "notice",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        # Block on the server's own log until it is ready: no polling, no sleep.
        log = []
        for line in self.process.stdout:
            log.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server did not start on port {self.port}:\n{''.join(log)}")
        self.process.stdout.close()
        client = redis.Redis(port=self.port, socket_timeout=2.0)
        assert client.ping()
        client.close()

    def stop(self) -> None:
        """Kill the server (as a crash would): its data is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "redis-server is not on PATH, and the Redis integration tests need a real one: "
            "`make test` installs it (scripts/ensure-redis-server.sh), or run "
            "`sudo apt-get install -y redis-server`"
        )
    server = RedisServer(executable, _free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
