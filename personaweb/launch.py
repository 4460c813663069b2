"""`make run`: serve PersonaWeb with daphne, starting the embedded local model when no endpoint
is configured (no OPENAI_API_KEY and no OPENAI_BASE_URL)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from contextlib import ExitStack

from personaweb.llm.config import endpoint_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    config = endpoint_from_env(os.environ)
    with ExitStack() as stack:
        if config.embedded:
            from personaweb.llm.embedded import EmbeddedServer, server_answers

            if server_answers(config.base_url or ""):
                print(f"embedded model already answering at {config.base_url}", flush=True)
            else:
                print("starting the embedded local model (SmolLM2-135M) ...", flush=True)
                server = stack.enter_context(EmbeddedServer.from_config(config))
                print(f"embedded model ready at {server.base_url}", flush=True)
        else:
            print(f"LLM endpoint: {config.base_url or 'OpenAI'} (model {config.default_model})")
        print(f"PersonaWeb at http://{args.host}:{args.port}/", flush=True)
        daphne = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                args.host,
                "-p",
                str(args.port),
                "personaweb.asgi:application",
            ],
        )

        def forward(signum: int, _frame: object) -> None:
            daphne.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return daphne.wait()


if __name__ == "__main__":
    raise SystemExit(main())
