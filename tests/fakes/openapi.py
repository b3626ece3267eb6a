"""Load LINE's official OpenAPI specs (read in place, never copied) and validate against them.

The spec directory is ``$LINE_OPENAPI_DIR`` if set, else ``<repo root>/../shared/line-openapi``, else (a
clone made elsewhere, e.g. CI's ``git clone . /tmp/...``) the same place beside the local repository it was
cloned from (its ``origin``). Every
end-to-end test validates LINE's requests against it (:func:`require_specs`): where it is missing, such a
test fails under CI (``CI=true``) and is skipped, saying why, elsewhere; it never passes unchecked.

Two adjustments are made to the parsed spec, in memory only:

* LINE models polymorphism as a parent schema with a ``discriminator`` mapping and *no*
  ``oneOf``/``allOf`` (children ``allOf`` the parent).  openapi-schema-validator only follows a
  discriminator next to ``oneOf``/``anyOf``/``allOf``, so as written a ``Message`` is only checked for
  ``type`` and e.g. a text message without ``text`` passes.  Every reference to such a parent (except
  the children's own ``allOf`` back-reference) is pointed at a synthetic
  ``{"oneOf": [children], "discriminator": ...}`` schema so the concrete subtype is validated.
* Operation-level ``servers`` (``api-data.line.me`` for blob endpoints) are dropped, and requests are
  validated as if sent to the spec's first server URL (``https://api.line.me``), whatever host the
  fake actually listens on.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest
from openapi_core.validation.request.exceptions import InvalidRequestBody

SPEC_DIR_ENV = "LINE_OPENAPI_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
_POLY_SUFFIX = "__polymorphic"
_MAX_ERROR_CHARS = 400

_lock = threading.Lock()  # guards the cache and serialises validation (validator thread-safety unknown)
_cache: dict[Path, tuple[OpenAPI, str]] = {}


def spec_dir() -> Path:
    env = os.environ.get(SPEC_DIR_ENV)
    if env:
        return Path(env)
    beside = REPO_ROOT.parent / "shared" / "line-openapi"
    origin = _origin_checkout()
    if not beside.is_dir() and origin is not None and (origin.parent / "shared" / "line-openapi").is_dir():
        return origin.parent / "shared" / "line-openapi"
    return beside


@functools.cache
def _origin_checkout() -> Path | None:
    """The local repository this checkout was cloned from (``remote.origin.url`` naming a directory), or None."""
    try:
        url = subprocess.run(["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.removeprefix("file://")) if url.startswith(("/", "file://")) else None
    return path.resolve() if path is not None and path.is_dir() else None


def _spec_file(name: str) -> Path | None:
    path = spec_dir() / name
    return path if path.is_file() else None


def messaging_spec_path() -> Path | None:
    """Path of messaging-api.yml, or None if the spec checkout is absent."""
    return _spec_file("messaging-api.yml")


def insight_spec_path() -> Path | None:
    """Path of insight.yml (statistics), or None if the spec checkout is absent."""
    return _spec_file("insight.yml")


def webhook_spec_path() -> Path | None:
    """Path of webhook.yml, or None if the spec checkout is absent."""
    return _spec_file("webhook.yml")


def in_ci() -> bool:
    """CI sets CI=true (the CI runner does, as do the common CI services)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_specs(*names: str) -> None:
    """The spec files (``messaging-api.yml``, ``webhook.yml``) a test checks LINE's requests against. One
    missing: under CI the test fails (a run that checks nothing must not pass), elsewhere it is skipped with
    the reason."""
    missing = [name for name in names if _spec_file(name) is None]
    if not missing:
        return
    why = (f"LINE OpenAPI spec {' and '.join(missing)} not found in {spec_dir()} (set {SPEC_DIR_ENV} or clone "
           "line-openapi into ../shared): LINE requests cannot be validated")
    if in_ci():
        pytest.fail(f"{why}; under CI every end-to-end test must validate them", pytrace=False)
    pytest.skip(why)


def _rewrite_refs(node: Any, targets: Mapping[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in targets:
            node["$ref"] = targets[ref]
        for key, value in node.items():
            if key == "allOf" and isinstance(value, list):
                # A direct ``{"$ref": Parent}`` in allOf is a child inheriting from its parent: keep it.
                for item in value:
                    if not (isinstance(item, dict) and "$ref" in item):
                        _rewrite_refs(item, targets)
            else:
                _rewrite_refs(value, targets)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, targets)


def _prepare(spec: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    targets: dict[str, str] = {}
    for name, schema in list(schemas.items()):
        disc = schema.get("discriminator") if isinstance(schema, dict) else None
        if not disc or not disc.get("mapping") or any(k in schema for k in ("oneOf", "anyOf", "allOf")):
            continue
        prop = disc["propertyName"]
        poly_name = name + _POLY_SUFFIX
        schemas[poly_name] = {
            "type": "object",
            "required": [prop],
            "properties": {prop: {"type": "string", "enum": sorted(disc["mapping"])}},
            "oneOf": [{"$ref": ref} for ref in dict.fromkeys(disc["mapping"].values())],
            "discriminator": {"propertyName": prop, "mapping": dict(disc["mapping"])},
        }
        targets[f"#/components/schemas/{name}"] = f"#/components/schemas/{poly_name}"
    _rewrite_refs(spec, targets)
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("servers", None)
        if isinstance(item, dict):
            item.pop("servers", None)
    return spec


def load_spec(path: Path) -> tuple[OpenAPI, str]:
    """Parsed (and adjusted) openapi-core object plus its server URL; cached per file."""
    key = path.resolve()
    with _lock:
        if key not in _cache:
            with key.open(encoding="utf-8") as f:
                raw = yaml.safe_load(f)
            host_url = raw.get("servers", [{}])[0].get("url", "https://api.line.me").rstrip("/")
            _cache[key] = (OpenAPI.from_dict(_prepare(raw)), host_url)
        return _cache[key]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe(error: Exception) -> list[str]:
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None) or ()
    if not schema_errors:
        return [_short(f"{type(error).__name__}: {error}")]
    # str(InvalidRequestBody) repeats the whole body; other errors name the parameter at fault.
    label = "request body" if isinstance(error, InvalidRequestBody) else str(error)
    return [_short(f"{label} {se.json_path}: {se.message}") for se in schema_errors]


def validate_api_request(
    spec_path: Path,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    query: str = "",
) -> list[str]:
    """Problems (empty if none) with a request, judged by the OpenAPI spec at ``spec_path``."""
    api, host_url = load_spec(spec_path)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
    request = MockRequest(
        host_url,
        method,
        path,
        args=parse_qs(query),
        headers=dict(headers),
        data=body or None,
        content_type=content_type,
    )
    with _lock:
        return [msg for error in api.iter_request_errors(request) for msg in _describe(error)]


def validate_webhook_body(body: Mapping[str, Any], spec_path: Path | None = None) -> list[str]:
    """Problems (empty if none) with a webhook request body, judged by ``CallbackRequest`` in webhook.yml.

    Raises FileNotFoundError if the spec is absent (check ``webhook_spec_path()`` first to skip).
    """
    spec_path = spec_path or webhook_spec_path()
    if spec_path is None:
        raise FileNotFoundError(f"webhook.yml not found in {spec_dir()} (set {SPEC_DIR_ENV})")
    # webhook.yml declares a dummy "POST /callback" whose request body is CallbackRequest.
    return validate_api_request(
        spec_path, "POST", "/callback", {"Content-Type": "application/json"}, json.dumps(body).encode()
    )
