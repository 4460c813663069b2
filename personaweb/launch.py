"""`make run`: serve PersonaWeb with daphne, starting the embedded local model when no endpoint
is configured (no OPENAI_API_KEY and no OPENAI_BASE_URL).

The launcher supervises both processes. It says "ready" only once the embedded server has
answered a real completion. If that server dies later, the launcher says so in the terminal
(which process, how it ended, its last lines, what to do) and writes the same facts to a status
file whose path daphne gets in PERSONAWEB_EMBEDDED_STATUS, so the page and every failed node
say it too. A server that had been healthy is restarted (at most RESTARTS times); one that dies
again at once stays down, because restarting it would only repeat the crash.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from personaweb.llm.config import EndpointConfig, endpoint_from_env

RESTARTS = 3
"""Most automatic restarts of the embedded server per launch."""
HEALTHY_AFTER_S = 60.0
"""A server that ran this long before dying gets restarted; one that died sooner does not."""
POLL_S = 0.5


def banner(lines: list[str]) -> str:
    rule = "=" * 78
    return "\n".join([rule, *lines, rule])


class EmbeddedSupervisor:
    """Runs the embedded server, reports its death, restarts it when that makes sense."""

    def __init__(self, config: EndpointConfig, status_path: Path) -> None:
        from personaweb.llm.embedded import EmbeddedServer

        self.server = EmbeddedServer.from_config(config)
        self.status_path = status_path
        self.started_at = 0.0
        self.restarts = 0
        self.down = False

    def start(self) -> None:
        from personaweb.llm.embedded import EmbeddedStatus, write_status

        write_status(
            self.status_path,
            EmbeddedStatus("starting", self.server.base_url, at=time.time()),
        )
        self.server.start()  # raises EmbeddedServerError with the server's last words
        self.started_at = time.monotonic()
        write_status(
            self.status_path,
            EmbeddedStatus("ready", self.server.base_url, pid=self.server.pid, at=time.time()),
        )

    def check(self) -> None:
        """Called every POLL_S: notice a death, report it, maybe restart."""
        from personaweb.llm.embedded import EmbeddedServerError, write_status

        if self.down:
            return
        death = self.server.death()
        if death is None:
            return
        write_status(self.status_path, death)
        self.server.stop()
        print(
            banner(
                [
                    f"The embedded model server (pid {death.pid}) {death.exit}.",
                    "Its output ended with:",
                    *("  " + line for line in death.tail.splitlines()),
                    death.advice,
                ]
            ),
            file=sys.stderr,
            flush=True,
        )
        lived = time.monotonic() - self.started_at
        if lived < HEALTHY_AFTER_S or self.restarts >= RESTARTS:
            print("Not restarting it: replies will fail until you restart `make run`.", flush=True)
            self.down = True
            return
        self.restarts += 1
        print(f"restarting the embedded model ({self.restarts} of {RESTARTS}) ...", flush=True)
        try:
            self.start()
        except EmbeddedServerError as exc:
            print(f"the restart failed: {exc}", file=sys.stderr, flush=True)
            death = self.server.death()
            if death is not None:
                write_status(self.status_path, death)
            self.down = True
            return
        print(f"embedded model ready again at {self.server.base_url}", flush=True)

    def stop(self) -> None:
        self.server.stop()


def apart_from_app(config: EndpointConfig, env: dict[str, str], app_port: int) -> EndpointConfig:
    """The embedded model's endpoint, on a port of its own: when the app is to listen on the
    model's port (`make run PORT=8765`, the model's default), the model moves to a free port
    and `env` (what the app is started with) says where."""
    if not config.embedded or config.embedded_port != app_port:
        return config
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    env["PERSONAWEB_EMBEDDED_PORT"] = str(free)
    print(f"port {app_port} is the app's: the embedded model listens on {free}", flush=True)
    return endpoint_from_env(env)


class Stopping(Exception):
    """A person (or an init system) asked the launcher to stop before daphne was up."""


class Shutdown:
    """SIGTERM and SIGINT, as a terminal's Ctrl-C or an init system sends them: the launcher
    stops daphne and then the embedded model, in that order, and says nothing of a "death".
    The embedded model runs in a session of its own so that a terminal's Ctrl-C does not reach
    it before daphne is down; an init system that signals the whole group still reaches it,
    and since a stop was asked for, that is no crash either."""

    def __init__(self) -> None:
        self.asked = False
        self.daphne: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, signum: int, _frame: object) -> None:
        first = not self.asked
        self.asked = True
        if self.daphne is None:
            if first:
                raise Stopping()
            return
        if self.daphne.poll() is None:
            self.daphne.send_signal(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    shutdown = Shutdown()
    shutdown.install()
    try:
        return serve(args.host, args.port, shutdown)
    except Stopping:
        print("stopped before PersonaWeb was up", flush=True)
        return 0


def serve(host: str, port: int, shutdown: Shutdown) -> int:
    env = dict(os.environ)
    config = apart_from_app(endpoint_from_env(env), env, port)
    supervisor: EmbeddedSupervisor | None = None
    with ExitStack() as stack:
        if config.embedded:
            from personaweb.llm.embedded import EmbeddedServerError, server_answers

            if server_answers(config.base_url or ""):
                print(f"embedded model already answering at {config.base_url}", flush=True)
            else:
                print("starting the embedded local model (SmolLM2-135M) ...", flush=True)
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pw-")))
                supervisor = EmbeddedSupervisor(config, folder / "embedded-status.json")
                stack.callback(supervisor.stop)
                try:
                    supervisor.start()
                except EmbeddedServerError as exc:
                    print(banner([f"error: {exc}"]), file=sys.stderr, flush=True)
                    return 1
                env["PERSONAWEB_EMBEDDED_STATUS"] = str(supervisor.status_path)
                print(
                    f"embedded model ready at {supervisor.server.base_url} "
                    "(it answered a first completion)",
                    flush=True,
                )
        else:
            print(f"LLM endpoint: {config.base_url or 'OpenAI'} (model {config.default_model})")
        print(f"PersonaWeb at http://{host}:{port}/", flush=True)
        shutdown.daphne = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                host,
                "-p",
                str(port),
                "personaweb.asgi:application",
            ],
            env=env,
        )
        while True:
            code = shutdown.daphne.poll()
            if code is not None:
                if shutdown.asked:
                    print("PersonaWeb stopped", flush=True)
                    return 0
                return code
            if supervisor is not None and not shutdown.asked:
                supervisor.check()
            time.sleep(POLL_S)


if __name__ == "__main__":
    raise SystemExit(main())
