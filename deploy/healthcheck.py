"""The container's HEALTHCHECK: exit 0 when the web app on $PORT (default 8000) is ready, 1 otherwise.

Asks ``/readyz`` first; a build that has no ``/readyz`` yet answers 404 there, and then ``/healthz`` decides.
Any other answer than 200 (a 503 saying Redis is down, say), a refused connection or a timeout is
unhealthy. Standard library only: the slim image has no curl. The reason goes to stdout, which Docker
keeps in the container's health log (``docker inspect``); it never holds a secret.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT = 4.0  # seconds per request, below the HEALTHCHECK's --timeout=5s
# Straight to the app: an HTTP(S)_PROXY in the container's environment must not carry the probe elsewhere.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe(port: str) -> tuple[bool, str]:
    for path in ("/readyz", "/healthz"):
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with OPENER.open(url, timeout=TIMEOUT) as response:
                return response.status == 200, f"{path}: {response.status}"
        except urllib.error.HTTPError as e:
            if e.code == 404 and path == "/readyz":
                continue  # no /readyz in this build: /healthz decides
            return False, f"{path}: {e.code} {e.read(200).decode('utf-8', 'replace').strip()}"
        except urllib.error.URLError as e:  # no answer: refused, unreachable, timed out
            cause = e.reason if isinstance(e.reason, BaseException) else e
            return False, f"{path}: {type(cause).__name__}: {cause}"
        except (OSError, ValueError) as e:  # a broken or cut-off answer
            return False, f"{path}: {type(e).__name__}: {e}"
    return False, "/healthz: 404"


def main() -> int:
    port = os.environ.get("PORT", "").strip() or "8000"
    ok, reason = probe(port)
    print(reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
