from __future__ import annotations

from tests.api.conftest import alice_token, bob_token  # noqa: F401
from tests.web.conftest import runs_cleaned  # noqa: F401  (runs are process-wide: see there)
