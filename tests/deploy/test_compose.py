"""The shared-hub deployment (Dockerfile, docker-compose.yml, deploy/shared-hub.toml), checked
statically: no Docker engine is needed. Every command a container runs is parsed by the real
program it names — the `gateway` click CLI (with each command's body replaced by a recorder, so
nothing is served or migrated) or the example back office's own argument parser — and the hub's
configuration is read with the hub's own loader."""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from gateway.cli import main
from gateway.config import Config, load_config
from gateway.routing.registry import ConnectorSet

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SHARED_HUB_TOML = ROOT / "deploy" / "shared-hub.toml"

SERVICES = {"postgres", "migrate", "backoffice", "hub"}
LONG_RUNNING = {"postgres", "backoffice", "hub"}
HUB_IMAGE_SERVICES = {"migrate", "backoffice", "hub"}
BACKOFFICE_MODULE = "examples.supplier_backoffice"


@pytest.fixture(autouse=True)
def database_backend() -> Iterator[None]:
    """Nothing here opens a database: on the PostgreSQL pass, skip making one per test (this
    overrides tests/conftest.py's fixture of the same name for this module only)."""
    yield


# --- reading the files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, continuation lines joined, split into stages at FROM."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments (and parser directives) may sit inside a continuation too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, value = line.partition(" ")
        instruction = Instruction(keyword.upper(), value.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"instruction before the first FROM: {line}"
        stages[-1].append(instruction)
    return stages


def exec_form(value: str) -> list[str]:
    """A JSON (exec form) command; the shell form is refused, it would hide a `sh -c`."""
    argv = json.loads(value)
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), value
    return argv


def split_flags(value: str) -> tuple[dict[str, str], list[str]]:
    """`--from=builder --chown=x a b` -> ({"from": "builder", "chown": "x"}, ["a", "b"])."""
    flags: dict[str, str] = {}
    rest: list[str] = []
    for token in shlex.split(value):
        if token.startswith("--") and not rest:
            name, _, flag_value = token[2:].partition("=")
            flags[name] = flag_value
        else:
            rest.append(token)
    return flags, rest


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.value):
                name, sep, value = token.partition("=")
                assert sep, f"ENV in the legacy `ENV name value` form: {instruction.value}"
                env[name] = value
    return env


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    assert isinstance(raw, dict)
    return {str(k): str(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            found.append(
                Mount(str(entry["source"]), str(entry["target"]), bool(entry.get("read_only")))
            )
            continue
        parts = str(entry).split(":")
        assert len(parts) in (2, 3), f"volume {entry!r}: expected SOURCE:TARGET[:MODE]"
        found.append(Mount(parts[0], parts[1], len(parts) == 3 and "ro" in parts[2].split(",")))
    return found


def host_file(service: dict[str, Any], container_path: str) -> Path:
    """The repository file bind-mounted at container_path in this service."""
    for mount in mounts(service):
        if mount.is_bind and mount.target == container_path:
            path = (COMPOSE.parent / mount.source).resolve()
            assert path.is_file(), f"{mount.source} (mounted at {container_path}) does not exist"
            return path
    raise AssertionError(f"nothing is bind-mounted at {container_path}")


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert "entrypoint" not in service, "the image's entrypoint is not overridden"
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list) and command, "every service here names its command"
    return [str(a) for a in command]


def python_check(test: Any) -> tuple[str, str]:
    """A healthcheck of the form [CMD, python, -c, CODE]: (the code, the one URL it opens)."""
    assert isinstance(test, list) and test[0] == "CMD", f"exec-form healthcheck expected: {test}"
    assert test[1:3] == ["python", "-c"], "checks run python (the slim image has no curl)"
    code = test[3]
    compile(code, "<healthcheck>", "exec")  # it is Python
    assert "urllib.request.urlopen(" in code
    urls = [w.strip("'\"") for w in code.replace("(", " ").replace(",", " ").split() if "://" in w]
    assert len(urls) == 1, code
    return code, urls[0]


# --- the real `gateway` CLI --------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    command: str  # "serve", "db upgrade", ...
    params: dict[str, Any]
    config: Config


def _leaves(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from _leaves(command, f"{path} ")
        else:
            yield path, command


def run_gateway(argv: list[str], config_file: Path | None) -> Invocation:
    """Invoke the real CLI with argv as a container would (GATEWAY_CONFIG set to config_file),
    every command's body replaced by a recorder: the group loads the configuration for real,
    click resolves the command and parses and converts every option, nothing else runs."""
    assert argv[0] == "gateway", argv
    calls: list[Invocation] = []

    def recorder(path: str) -> Callable[..., None]:
        def record(**params: Any) -> None:
            config = click.get_current_context().find_root().obj["config"]
            calls.append(Invocation(path, params, config))

        return record

    env = {"GATEWAY_CONFIG": str(config_file) if config_file else None}
    with ExitStack() as stack:
        for path, command in _leaves(main):
            stack.enter_context(mock.patch.object(command, "callback", recorder(path)))
        result = CliRunner(env=env).invoke(main, argv[1:], prog_name="gateway")
    assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"
    assert len(calls) == 1, f"{shlex.join(argv)} ran {len(calls)} commands"
    # And the command's own --help, as an operator would check it.
    helped = CliRunner(env=env).invoke(main, [*argv[1:], "--help"], prog_name="gateway")
    assert helped.exit_code == 0, helped.output
    assert helped.output.startswith(f"Usage: gateway {calls[0].command} "), helped.output
    return calls[0]


def test_run_gateway_refuses_what_the_cli_does_not_have() -> None:
    with pytest.raises(AssertionError):
        run_gateway(["gateway", "serve", "--listen", "0.0.0.0"], None)
    with pytest.raises(AssertionError):
        run_gateway(["gateway", "serve", "--port", "http"], None)
    with pytest.raises(AssertionError):
        run_gateway(["gateway", "database", "upgrade"], None)
    assert run_gateway(["gateway", "serve", "--port", "9"], None).params["port"] == 9


def effective_listener(call: Invocation) -> tuple[str, int, int]:
    """What `gateway serve` listens on: its options over the configuration, as serve does."""
    assert call.command == "serve"
    server = call.config.server
    https = call.params["https_port"]
    return (
        call.params["host"] or server.host,
        server.port if call.params["port"] is None else call.params["port"],
        server.https_port if https is None else https,
    )


def gateway_service(services: dict[str, dict[str, Any]], name: str) -> Invocation:
    service = services[name]
    config = environment(service).get("GATEWAY_CONFIG")
    assert config, f"{name}: GATEWAY_CONFIG names the hub's configuration"
    return run_gateway(command_of(service), host_file(service, config))


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_has_exactly_the_shared_hub_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert isinstance(check, dict) and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name
        assert services[name].get("restart") == "unless-stopped", name
    # The one-shot inherits the image's HEALTHCHECK (the hub's); it must not be judged by it.
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["restart"] == "no"  # the string: YAML's bare no is False


def test_dependencies_start_things_in_order(services: dict[str, dict[str, Any]]) -> None:
    assert depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    hub = depends_on(services["hub"])
    assert hub["migrate"] == "service_completed_successfully"
    assert hub["backoffice"] in ("service_healthy", "service_started")
    assert hub.get("postgres", "service_healthy") == "service_healthy"
    assert depends_on(services["backoffice"]) == {}
    assert depends_on(services["postgres"]) == {}
    for name, service in services.items():
        for needed in depends_on(service):
            assert needed in services, f"{name} depends on unknown {needed}"
            if depends_on(service)[needed] == "service_healthy":
                assert "healthcheck" in services[needed], f"{needed} cannot become healthy"


def test_postgres(services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    test = postgres["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and "pg_isready" in " ".join(test[1:])
    (data,) = mounts(postgres)
    assert data.target == "/var/lib/postgresql/data" and not data.is_bind
    assert data.source in compose["volumes"]


def test_hub_image_services_build_this_repository(services: dict[str, dict[str, Any]]) -> None:
    images = set()
    for name in HUB_IMAGE_SERVICES:
        service = services[name]
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (COMPOSE.parent / context / dockerfile).resolve() == DOCKERFILE, name
        images.add(service["image"])
    assert len(images) == 1, f"one image for the hub, the migration and the back office: {images}"


def test_migrate_runs_the_real_db_upgrade_against_postgres(
    services: dict[str, dict[str, Any]],
) -> None:
    call = gateway_service(services, "migrate")
    assert call.command == "db upgrade"
    assert call.params["revision"] == "heads"
    url = make_url(call.config.database_url)
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "postgres"


def test_hub_serves_the_shared_configuration_on_every_interface(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    hub = services["hub"]
    call = gateway_service(services, "hub")
    host, port, https_port = effective_listener(call)
    assert host == "0.0.0.0", "inside a container the hub must listen beyond loopback"
    assert (port, https_port) == (8080, 8443)
    published = {int(str(p).rsplit(":", 1)[1]): str(p) for p in hub["ports"]}
    assert set(published) == {port, https_port}
    # Plain HTTP carries passwords in the clear: only this machine reaches it.
    assert published[port].startswith("127.0.0.1:")
    # Both migrate and the hub read the same file, read-only.
    for name in ("migrate", "hub"):
        (config_mount,) = (m for m in mounts(services[name]) if m.is_bind)
        assert config_mount.read_only, f"{name} mounts the configuration read-only"
        assert (COMPOSE.parent / config_mount.source).resolve() == SHARED_HUB_TOML
    # The hub's writable state (connector data, mail key, PKI) is on a named volume.
    state = [m for m in mounts(hub) if not m.is_bind]
    assert [m.source for m in state] == ["hub-data"] and "hub-data" in compose["volumes"]
    volume = PurePosixPath(state[0].target)
    for path in (call.config.data_dir, call.config.pki_dir):
        assert PurePosixPath(path).is_relative_to(volume), f"{path} is not on {volume}"
    _, url = python_check(hub["healthcheck"]["test"])
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", port, "/ready")


def test_backoffice_runs_the_example_with_arguments_it_accepts(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    backoffice = services["backoffice"]
    argv = command_of(backoffice)
    assert argv[:3] == ["python", "-m", BACKOFFICE_MODULE]
    assert importlib.util.find_spec(f"{BACKOFFICE_MODULE}.__main__") is not None
    module = importlib.import_module(f"{BACKOFFICE_MODULE}.__main__")
    served: dict[str, Any] = {}
    monkeypatch.setattr(module.web, "run_app", lambda app, **kw: served.update(kw))
    module.main(argv[3:])  # its own argparse: an unknown option would exit
    assert served == {"host": "0.0.0.0", "port": served["port"]}
    _, url = python_check(backoffice["healthcheck"]["test"])
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == ("127.0.0.1", served["port"])
    assert parts.path in {"/_stats", "/_fault"}  # GET routes the example has
    # The hub's connector reaches it by its service name, on the port it listens on.
    (forward,) = (c for c in load_config(SHARED_HUB_TOML).connectors if c.type == "http-forward")
    target = urlsplit(forward.options["url"])
    assert (target.hostname, target.port, target.path) == (
        "backoffice",
        served["port"],
        "/transactions",
    )


def test_run_backoffice_check_catches_a_bad_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(f"{BACKOFFICE_MODULE}.__main__")
    monkeypatch.setattr(module.web, "run_app", lambda app, **kw: None)
    with pytest.raises(SystemExit):
        module.main(["--bind", "0.0.0.0"])


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_final_stage_copies_only_the_venv() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    base, _, name = stages[0][0].value.partition(" AS ")
    assert base.strip() == "python:3.11-slim" and name.strip() == "builder"
    final = stages[-1]
    assert final[0].value == "python:3.11-slim"
    from_builder = [
        split_flags(i.value)[1]
        for i in final
        if i.keyword == "COPY" and "--from=builder" in i.value
    ]
    assert from_builder == [["/opt/venv", "/opt/venv"]]
    assert env_of(final)["PATH"].startswith("/opt/venv/bin:")
    assert not any(i.keyword == "ADD" for stage in stages for i in stage)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = [i.value for i in final if i.keyword == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    if user.isdigit():  # a numeric user must exist in the image
        assert any(i.keyword == "RUN" and f"--uid {user}" in i.value for i in final)


def test_dockerfile_healthcheck_asks_the_hub() -> None:
    final = dockerfile_stages()[-1]
    (healthcheck,) = [i.value for i in final if i.keyword == "HEALTHCHECK"]
    options, _, command = healthcheck.partition("CMD ")
    assert options.strip(), "interval/timeout/retries are set"
    _, url = python_check(["CMD", *exec_form(command)])
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", 8080, "/health")


def test_dockerfile_cmd_is_a_real_gateway_command_on_the_exposed_ports() -> None:
    final = dockerfile_stages()[-1]
    (cmd,) = [i.value for i in final if i.keyword == "CMD"]
    call = run_gateway(exec_form(cmd), None)
    host, port, https_port = effective_listener(call)
    assert host == "0.0.0.0"
    exposed = {
        int(p.split("/")[0]) for i in final if i.keyword == "EXPOSE" for p in i.value.split()
    }
    assert exposed == {port, https_port} == {8080, 8443}
    assert not any(i.keyword == "ENTRYPOINT" for i in final)


def test_dockerfile_copies_only_what_exists_and_is_in_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for secret in (".git", ".venv", "var", "certs", "**/*.key", "**/*.pem", "**/__pycache__"):
        assert secret in ignored, f".dockerignore does not exclude {secret}"
    copied = []
    for stage in dockerfile_stages():
        for instruction in stage:
            flags, args = split_flags(instruction.value)
            if instruction.keyword != "COPY" or "from" in flags:
                continue
            *sources, _destination = args
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                for pattern in ignored:
                    assert not fnmatch.fnmatch(source, pattern), f"{source} is .dockerignored"
                copied.append(source)
    # The wheel needs its metadata and both packages; the back office is not in the wheel.
    assert {"pyproject.toml", "README.md", "gateway", "connectors", "examples"} <= set(copied)


def test_image_can_import_the_back_office() -> None:
    final = dockerfile_stages()[-1]
    examples = [
        split_flags(i.value)[1][-1]
        for i in final
        if i.keyword == "COPY" and split_flags(i.value)[1][0] == "examples"
    ]
    assert len(examples) == 1
    parent = str(PurePosixPath(examples[0]).parent)
    assert PurePosixPath(examples[0]).name == "examples"
    assert parent in env_of(final).get("PYTHONPATH", "").split(":")


# --- deploy/shared-hub.toml --------------------------------------------------------------------


def test_shared_hub_configuration_parses_with_the_hubs_loader(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    config = load_config(SHARED_HUB_TOML)
    url = make_url(config.database_url)
    assert url.drivername == "postgresql+asyncpg"
    postgres = environment(services["postgres"])
    assert (url.host, url.username, url.password, url.database) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert config.server.host == "0.0.0.0"
    assert "hub" in config.pki.hosts, "the server certificate names the hub's compose hostname"


def test_a_council_is_routed_to_the_back_office_over_http_forward(tmp_path: Path) -> None:
    config = load_config(SHARED_HUB_TOML)
    by_name = {c.name: c for c in config.connectors}
    routed = [r for r in config.routes if by_name[r.connector].type == "http-forward"]
    assert len(routed) == 1
    (route,) = routed
    assert route.class_ == "LA-CTAX-VIEW"  # the only class the example back office handles
    connector = by_name[route.connector]
    assert route.timeout >= connector.options.get("timeout", 10)
    # http-forward checks no known facts, so nobody could enrol: a signed-on citizen suffices.
    assert route.auth_level < 1 or not route.keys_required
    # The connector itself accepts its options (built by entry point, as the hub does).
    built = ConnectorSet.build([connector], tmp_path, config.base_dir)
    assert built.get(connector.name) is not None
    # The demo councils are still served, so the demo citizens work as documented.
    assert {r.organisation for r in config.routes} >= {"E08000024", "E07000188"}
