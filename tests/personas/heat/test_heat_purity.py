"""The heat core stays pure: importing it pulls in no Django."""

from __future__ import annotations

import subprocess
import sys


def test_the_heat_core_imports_no_django() -> None:
    # A fresh interpreter: pytest-django has already imported Django into this one.
    code = "import personaweb.personas.heat, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
