"""The container's HEALTHCHECK: exit 0 when the web app on $PORT (default 8000) is ready, 1 otherwise.

Asks ``/readyz`` (200 only while Redis answers and can persist, and the content is loaded; bot/health.py).
Any other answer (a 503 saying Redis is down, say), a refused connection or a timeout is unhealthy. The
probe and the app come from one image, so there is no older app without ``/readyz`` to fall back for.
Standard library only: the slim image has no curl. The reason goes to stdout, which Docker keeps in the
container's health log (``docker inspect``); it never holds a secret.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

PATH = "/readyz"
TIMEOUT = 4.0  # seconds, below the HEALTHCHECK's --timeout=5s
# Straight to the app: an HTTP(S)_PROXY in the container's environment must not carry the probe elsewhere.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe(port: str) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        with OPENER.open(url, timeout=TIMEOUT) as response:
            return response.status == 200, f"{PATH}: {response.status}"
    except urllib.error.HTTPError as e:
        reason = " ".join(e.read(200).decode("utf-8", "replace").split())
        return False, f"{PATH}: {e.code} {reason}"
    except urllib.error.URLError as e:  # no answer: refused, unreachable, timed out
        cause = e.reason if isinstance(e.reason, BaseException) else e
        return False, f"{PATH}: {type(cause).__name__}: {cause}"
    except (OSError, ValueError) as e:  # a broken or cut-off answer
        return False, f"{PATH}: {type(e).__name__}: {e}"


def main() -> int:
    port = os.environ.get("PORT", "").strip() or "8000"
    ok, reason = probe(port)
    print(reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
