"""Packaging: the Docker files, compose file, example configs, console script and CI agree."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import re
import shlex
import subprocess
import sys
import tomllib
import typing
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.config import schema as settings_module
from proxy.config.load import parse_settings
from proxy.config.schema import CLIENT_SECRET_ENV, CLUSTER_KEY_ENV, TOKEN_KEY_ENV, Settings
from proxy.core.policy import Policy
from tests.support.connect import TOKEN_KEY
from tests.support.paths import ROOT
from tests.support.proxies import SECRETS_ENV

COMPOSE = ROOT / "docker-compose.yml"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
EXAMPLE = ROOT / "config" / "example.toml"
README = ROOT / "README.md"
# Fields the proxy never reads from a file (parse_settings rejects them there).
ENV_ONLY_FIELDS = settings_module.ENV_ONLY
_COMMENTED_KEY = re.compile(r"^#\s?([A-Za-z_][A-Za-z0-9_]*\s*=.*)$")


def _compose() -> dict[str, Any]:
    with COMPOSE.open() as handle:
        document = yaml.safe_load(handle)
    assert isinstance(document, dict)
    return document


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _build(service: dict[str, Any]) -> tuple[Path, Path]:
    """The build context and Dockerfile of a service, as repo paths."""
    build = service["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (ROOT / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _option(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(entry.partition("=")[::2] for entry in env)
    return {str(k): str(v) for k, v in env.items()}


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of each short-syntax volume."""
    mounts = []
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        mounts.append((source, target))
    return mounts


def _dockerfile_lines(dockerfile: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _image_files(dockerfile: Path) -> dict[PurePosixPath, Path]:
    """Map each COPY destination in the image to its source in the build context."""
    context = dockerfile.parent
    workdir = PurePosixPath("/")
    copied: dict[PurePosixPath, Path] = {}
    for line in _dockerfile_lines(dockerfile):
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "WORKDIR":
            workdir = workdir / rest.strip()
        elif instruction.upper() in ("COPY", "ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            *sources, destination = args
            target = workdir / destination
            for source in sources:
                into_dir = destination.endswith("/") or len(sources) > 1
                copied[target / PurePosixPath(source).name if into_dir else target] = (
                    context / source
                )
    return copied


def _in_image(path: str, dockerfile: Path) -> Path | None:
    """The repo file that ends up at ``path`` in the image, if a COPY puts it there."""
    wanted = PurePosixPath(path)
    for destination, source in _image_files(dockerfile).items():
        if wanted == destination:
            return source
        if destination in wanted.parents:
            return source / wanted.relative_to(destination)
    return None


def _settings_dataclasses() -> list[type[Any]]:
    return [
        cls
        for _, cls in inspect.getmembers(settings_module, dataclasses.is_dataclass)
        if isinstance(cls, type) and cls.__module__ == settings_module.__name__
    ]


def _uncommented(text: str) -> str:
    """The TOML with commented-out ``# key = value`` lines switched on."""
    return "\n".join(
        match.group(1) if (match := _COMMENTED_KEY.match(line.strip())) else line
        for line in text.splitlines()
    )


def _section_class(hint: Any) -> type[Any]:
    """The settings dataclass behind a field of Settings (``X`` or ``tuple[X, ...]``)."""
    args = typing.get_args(hint)
    cls = args[0] if args else hint
    assert dataclasses.is_dataclass(cls), f"{hint} is not a settings dataclass"
    return cls  # type: ignore[return-value]


def test_compose_file_parses() -> None:
    """docker-compose.yml is valid YAML with at least the mock-graph and proxy services."""
    assert {"mock-graph", "proxy"} <= set(_services())


@pytest.mark.parametrize("name", sorted(_services()))
def test_compose_build_context_has_dockerfile(name: str) -> None:
    """Every compose service builds from an existing context that holds its Dockerfile."""
    context, dockerfile = _build(_services()[name])
    assert context.is_dir(), f"{name}: build context {context} does not exist"
    assert dockerfile.is_file(), f"{name}: no Dockerfile at {dockerfile}"


def test_dockerfile_copy_sources_exist_and_are_not_ignored() -> None:
    """Every COPY source of the Dockerfile is in the repo and not excluded by .dockerignore."""
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = list(_image_files(ROOT / "Dockerfile").values())
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert source.exists(), f"COPY source {source} is missing"
        assert source.relative_to(ROOT).parts[0] not in ignored, f"{source} is .dockerignored"


def test_dockerfile_runs_the_console_script_as_non_root() -> None:
    """The image's entry point is freebusy-proxy, its demo publishable, and it drops root."""
    lines = _dockerfile_lines(ROOT / "Dockerfile")
    assert lines[0].startswith("FROM python:3.11-slim")
    assert 'ENTRYPOINT ["freebusy-proxy"]' in lines
    # The demo listens beyond loopback, its mock on a fixed port the host can publish.
    assert 'CMD ["serve", "--host", "0.0.0.0", "--mock-port", "8443"]' in lines
    assert "EXPOSE 8080 8443" in lines
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "the image runs as root"
    assert users[-1] not in ("root", "0")


def test_dockerfile_caches_dependencies_apart_from_the_code() -> None:
    """Dependencies install from pyproject.toml alone; the code comes after, with --no-deps."""
    lines = _dockerfile_lines(ROOT / "Dockerfile")
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    runs = [i for i, line in enumerate(lines) if line.startswith("RUN ")]
    assert lines[copies[0]] == "COPY pyproject.toml ./", "the first layer must be pyproject.toml"
    (code,) = [i for i in copies if "proxy" in shlex.split(lines[i])[1:-1]]
    dependencies = next(i for i in runs if "pip install -r" in lines[i])
    assert copies[0] < dependencies < copies[1] <= code, lines
    (package,) = [i for i in runs if "pip install" in lines[i] and i > code]
    assert "--no-deps" in lines[package]
    # What the first RUN installs is exactly what pyproject.toml declares.
    script = re.search(r'python -c "(.*?)" >', lines[dependencies])
    assert script is not None
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    printed = subprocess.run(  # noqa: S603 (our own interpreter, the Dockerfile's own line)
        [sys.executable, "-c", script.group(1)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert printed.stdout.split() == declared


def test_license_is_mit_as_declared() -> None:
    """pyproject.toml declares the SPDX licence MIT, and LICENSE holds the MIT text."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "WITHOUT WARRANTY OF ANY KIND" in text


def test_both_compose_services_have_healthchecks() -> None:
    """The mock and the proxy each say when they are healthy; the proxy asks its /healthz."""
    services = _services()
    for name in ("mock-graph", "proxy"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    probe = " ".join(services["proxy"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/healthz" in probe


def test_compose_urls_are_reachable_from_the_host() -> None:
    """The proxy and the mock's browser URL are published; the proxy reaches the mock inside."""
    services = _services()
    mock, proxy = services["mock-graph"], services["proxy"]
    mock_port = _option(_command(mock), "--port")
    assert f"{mock_port}:{mock_port}" in [str(p) for p in mock.get("ports", [])]
    browser = urlsplit(_option(_command(mock), "--browser-url") or "")
    assert (browser.scheme, browser.hostname, str(browser.port)) == (
        "https", "localhost", mock_port,
    )  # fmt: skip
    assert "8080:8080" in [str(p) for p in proxy.get("ports", [])]
    config = _mounted_config(proxy)
    authority = urlsplit(config["graph"]["authority"])
    assert (authority.hostname, str(authority.port)) == ("mock-graph", mock_port)
    assert config.get("server", {}).get("port", 8080) == 8080
    assert _environment(proxy)["FREEBUSY_PROXY_SERVER__HOST"] == "0.0.0.0"  # noqa: S104


def _mounted_config(service: dict[str, Any]) -> dict[str, Any]:
    """The TOML file a service's --config names, read from the repo file mounted there."""
    target = _option(_command(service), "--config")
    mounts = {container: source for source, container in _volumes(service)}
    assert target in mounts, f"{target} is not mounted"
    return tomllib.loads((ROOT / mounts[target]).read_text())


def test_compose_curl_asks_the_mock_with_dates_that_do_not_age() -> None:
    """The header's example: the demo key, a mock address, dates relative to today."""
    from proxy.mock import MockGraph, MockSettings

    header = COMPOSE.read_text().partition("\nservices:")[0]
    assert not re.search(r"20\d\d-\d\d-\d\d", header), "a fixed date goes stale"
    assert "$(date -u -d tomorrow +%F)" in header
    addresses = set(MockGraph(MockSettings()).organisation.addresses())
    asked = re.search(r"schedules=([^&]+)&", header)
    assert asked is not None
    assert set(asked.group(1).split(",")) <= addresses
    assert _demo_keys_in(header) <= _compose_key_hashes()


def _demo_keys_in(text: str) -> set[str]:
    """SHA-256 of every API key written in ``text``."""
    return {
        hashlib.sha256(key.encode()).hexdigest()
        for key in re.findall(r"fbp_[A-Za-z0-9_-]{43}", text)
    }


def _compose_key_hashes() -> set[str]:
    document = tomllib.loads((ROOT / "config" / "compose.toml").read_text())
    return {c["key_sha256"] for c in document["consumers"]} | {
        document["connect"]["admin_key_sha256"]
    }


def test_deployment_docs_agree_with_compose_and_the_image() -> None:
    """docs/deployment.md names the commands, the published URLs and the demo keys that work."""
    text = DEPLOYMENT.read_text()
    assert "docker compose up --build" in text
    for url in ("http://localhost:8080", "https://localhost:8443"):
        assert url in text
    assert "docker run --rm -p 8080:8080 -p 8443:8443 freebusy-proxy" in text
    keys = _demo_keys_in(text)
    assert keys == _compose_key_hashes(), "the documented demo keys are not compose.toml's"
    assert "/etc/freebusy-proxy/proxy.toml" in text


@pytest.mark.parametrize("name", sorted(_services()))
def test_compose_referenced_files_exist(name: str) -> None:
    """Bind-mounted paths and --config files of every service exist in the repo or image."""
    service = _services()[name]
    named_volumes = set(_compose().get("volumes") or {})
    for source, _target in _volumes(service):
        if source not in named_volumes:
            assert (ROOT / source).exists(), f"{name}: mounted {source} does not exist"
    config = _option(_command(service), "--config")
    if config is not None:
        mounted = {container: source for source, container in _volumes(service)}
        _, dockerfile = _build(service)
        source = ROOT / mounted[config] if config in mounted else _in_image(config, dockerfile)
        assert source is not None, f"{name}: {config} is neither mounted nor in the image"
        assert source.is_file(), f"{name}: {config} comes from {source}, which is missing"


@pytest.mark.parametrize("name", sorted(_services()))
def test_compose_environment_is_read_or_documented(name: str) -> None:
    """Every variable compose sets is read by proxy/, or sets a key by the documented rule."""
    code = "\n".join(path.read_text() for path in (ROOT / "proxy").rglob("*.py"))
    rule = (ROOT / "docs" / "configuration.md").read_text()
    assert "FREEBUSY_PROXY_<SECTION>__<KEY>" in rule
    for variable in _environment(_services()[name]):
        section, _, key = variable.removeprefix("FREEBUSY_PROXY_").lower().partition("__")
        by_rule = bool(key) and f"[{section}]" in EXAMPLE.read_text()
        assert variable in code or by_rule, f"{name}: {variable} is used nowhere"


def test_compose_config_is_valid_and_matches_the_mock(tmp_path: Path) -> None:
    """The mounted config/compose.toml passes check-config with the compose environment and
    points at the mock service, its CA and its identities."""
    from proxy.mock import MOCK_CLIENT_ID, MOCK_TENANT_ID

    services = _services()
    proxy_service = services["proxy"]
    document = _mounted_config(proxy_service)

    # The CA path is inside the volume the mock writes mock-ca.pem into.
    ca_file = PurePosixPath(document["graph"]["ca_file"])
    mock_cert_dir = _option(_command(services["mock-graph"]), "--cert-dir")
    assert ca_file == PurePosixPath(str(mock_cert_dir)) / "mock-ca.pem"
    mock_volume = dict((t, s) for s, t in _volumes(services["mock-graph"]))[str(mock_cert_dir)]
    proxy_volume = dict((t, s) for s, t in _volumes(proxy_service))[str(ca_file.parent)]
    assert mock_volume == proxy_volume
    storage = PurePosixPath(document["connect"]["storage_path"])
    assert str(storage.parent) in [t for _, t in _volumes(proxy_service)], "connections not kept"
    assert document["graph"]["tenant_id"] == MOCK_TENANT_ID
    assert document["graph"]["client_id"] == MOCK_CLIENT_ID

    # check-config for real, with the compose environment; only the CA is this machine's.
    fake_ca = tmp_path / "mock-ca.pem"
    fake_ca.write_text("placeholder\n")
    mounts = {container: source for source, container in _volumes(proxy_service)}
    config = ROOT / mounts[_option(_command(proxy_service), "--config") or ""]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    result = subprocess.run(  # noqa: S603 (our own interpreter and a repo file)
        [sys.executable, "-m", "proxy", "check-config", str(config)],
        cwd=ROOT,
        env={**env, **_environment(proxy_service), "FREEBUSY_PROXY_GRAPH__CA_FILE": str(fake_ca)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 consumer(s); Graph at https://mock-graph:8443/v1.0" in result.stdout


def test_console_script_is_declared() -> None:
    """pyproject.toml installs freebusy-proxy as proxy.run.cli:main, and that callable exists."""
    from proxy.run import cli

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["freebusy-proxy"] == "proxy.run.cli:main"
    assert callable(cli.main)


def test_python_m_proxy_help() -> None:
    """``python -m proxy --help`` exits 0 and lists every command."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "mock-graph", "check-config", "new-key"):
        assert command in result.stdout


def test_example_config_passes_check_config() -> None:
    """``python -m proxy check-config config/example.toml`` accepts the example."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    result = subprocess.run(  # noqa: S603 (our own interpreter and a repo file)
        [sys.executable, "-m", "proxy", "check-config", str(EXAMPLE)],
        cwd=ROOT,
        env={**env, **SECRETS_ENV, TOKEN_KEY_ENV: TOKEN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_example_config_documents_every_settings_field(tmp_path: Path) -> None:
    """config/example.toml sets (or shows commented out) every key the settings accept."""
    text = EXAMPLE.read_text()
    document = tomllib.loads(_uncommented(text))
    hints = typing.get_type_hints(Settings)
    documented: set[type[Any]] = {Settings}
    for section in dataclasses.fields(Settings):
        assert section.name in document, f"example.toml lacks [{section.name}]"
        cls = _section_class(hints[section.name])
        documented.add(cls)
        tables = document[section.name]
        for table in tables if isinstance(tables, list) else [tables]:
            for spec in dataclasses.fields(cls):
                if spec.name in ENV_ONLY_FIELDS:
                    continue
                # A consumer's policy keys sit in the consumer's own table.
                names = (
                    [f.name for f in dataclasses.fields(Policy)]
                    if spec.name == "policy"
                    else [spec.name]
                )
                for name in names:
                    assert name in table, f"example.toml lacks {section.name}.{name}"
    assert set(_settings_dataclasses()) == documented, "a settings dataclass is not covered"
    assert CLIENT_SECRET_ENV in text

    # Every documented key, switched on, is valid (the CA file, and the audit file's folder,
    # only have to exist).
    fake_ca = tmp_path / "ca.pem"
    fake_ca.write_text("placeholder\n")
    document["graph"]["ca_file"] = str(fake_ca)
    document["cluster"]["ca_file"] = str(fake_ca)
    document["cluster"]["redis_url"] = "rediss://redis:6379/0"
    document["audit"]["file"] = str(tmp_path / "audit.jsonl")
    parse_settings(
        document,
        environ={**SECRETS_ENV, TOKEN_KEY_ENV: TOKEN_KEY, CLUSTER_KEY_ENV: "c" * 32},
        base_dir=EXAMPLE.parent,
    )


def test_ci_script_runs_the_readme_test_command() -> None:
    """.ci/run is executable, strict, and runs the README's test command."""
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert "python -m pytest" in README.read_text()
    assert re.search(r"^python -m pytest$", text, re.MULTILINE)
