from __future__ import annotations

import subprocess
import sys


def test_the_core_and_the_llm_port_import_no_django() -> None:
    # A fresh interpreter: this test process has Django loaded by pytest-django already.
    code = (
        "import sys, personaweb.llm, personaweb.llm.scripted_server, personaweb.llm.embedded, "
        "personaweb.personas\n"
        "leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not leaked, leaked"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
