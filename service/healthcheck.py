"""``python -m service.healthcheck``: exit 0 when ``/healthz`` answers 200 (Docker HEALTHCHECK).

The port is uvicorn's (``UVICORN_PORT``, default 8000), read here because it is the server's
setting, not the application's.
"""

from __future__ import annotations

import os
import sys
import urllib.request

__all__ = ["main"]


def main() -> int:
    """Probe ``http://127.0.0.1:$UVICORN_PORT/healthz``; 0 when healthy, 1 otherwise."""
    url = f"http://127.0.0.1:{os.environ.get('UVICORN_PORT', '8000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return 0 if r.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
