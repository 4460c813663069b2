"""The scripted OpenAI-compatible server in a process of its own, for the live benchmarks:
its JSON work (a 10,000-node session's prompts are megabytes) must not hold the GIL of the
process whose WebSocket clients time the frames.

    python bench/scripted_llm_server.py LATENCY_S

prints its base URL on the first line, serves until its stdin closes, then prints the
script's own errors (a JSON list) and exits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import livekit


def main() -> int:
    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with livekit.scripted_llm(latency) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the benchmark closes it
        errors = list(server.script_errors)
    print(json.dumps(errors), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
