"""The OpenAPI document: shipped, served, valid, complete, and honoured (schemathesis)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from proxy.mock import RunningMock
from proxy.web.app import init_app
from proxy.web.openapi_document import build_document, render
from tests.support.leaks import assert_no_leak
from tests.support.paths import ROOT
from tests.support.proxies import KEY_ALL, ProxyFactory
from tests.support.replicas import cluster_settings

SHIPPED = ROOT / "proxy" / "web" / "openapi.json"
# Moderate, fixed: the run must stay within minutes on two cores and be reproducible.
SCHEMATHESIS_EXAMPLES = 40
SCHEMATHESIS_SEED = 20261122
SCHEMATHESIS_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)


def test_shipped_file_is_the_built_document() -> None:
    """proxy/web/openapi.json is what proxy/web/openapi_document.py builds (regenerate if not)."""
    assert SHIPPED.read_text() == render(), "run: python -m proxy.web.openapi_document"


def test_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator accepts the document as OpenAPI 3.1."""
    document = build_document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route, sub-applications included (already prefixed)."""
    found: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:
            found |= _routes(info["app"])
            continue
        path = info.get("path") or info.get("formatter")
        for route in resource:
            if route.method not in ("HEAD", "*"):
                found.add((route.method, path))
    return found


def test_every_route_is_documented_and_nothing_else(mock_graph: RunningMock) -> None:
    """Each route the app serves is an operation in the document, and vice versa (with
    [cluster] set, so replicas' own route is served; building the app opens no connection)."""
    app = init_app(cluster_settings(mock_graph, "redis://127.0.0.1:9/0"))
    documented = {
        (method.upper(), path)
        for path, operations in build_document()["paths"].items()
        for method in operations
    }
    assert _routes(app) == documented


def test_every_operation_documents_its_errors() -> None:
    """Every consumer operation lists 400, 401, 403 and 500, every admin operation 401 and 500,
    and each response has a body schema."""
    for path, operations in build_document()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security") == [{"adminKey": []}]:
                assert {"401", "500"} <= set(responses), (method, path)
            elif operation.get("security") == [{"clusterSignature": []}]:
                assert {"400", "401", "404", "500"} <= set(responses), (method, path)
            elif operation.get("security") != []:
                assert {"400", "401", "403", "500"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status != "304":
                    assert "content" in response, (method, path, status)


async def test_served_document_is_the_shipped_file(proxy: TestClient[Any, Any]) -> None:
    """GET /openapi.json serves the shipped file byte for byte, without a key."""
    async with proxy.get("/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.read() == SHIPPED.read_bytes()


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """schemathesis (its CLI, against the real app on a real socket): every check passes."""
    proxy = await make_proxy(mock_graph)
    base = f"http://{proxy.server.host}:{proxy.server.port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY_ALL}",
        "--checks",
        ",".join(SCHEMATHESIS_CHECKS),
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--seed",
        str(SCHEMATHESIS_SEED),
        "--workers",
        "1",
        "--no-color",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=540)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    generated = re.search(r"(\d+) generated", text)
    assert generated is not None, text[-2000:]
    assert int(generated.group(1)) > 100
    assert_no_leak(text.replace(KEY_ALL, ""))
