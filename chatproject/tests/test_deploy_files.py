"""What can be checked of the deployment without Docker or a cluster.

The Compose file, the GitHub workflow and the Kubernetes manifests are parsed
and validated against their published schemas, then held to their wiring:
services and ports match, secrets come only from .env, the proxy routes
WebSockets, Prometheus scrapes with the token, Grafana's dashboard asks only
for metrics that a real /metrics response carries, and the workflow runs what
.ci/run runs. Where Caddy, promtool or kubectl are installed, they check their
own files too (CI installs the first two).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
INIT_ENV = REPO_ROOT / "scripts" / "init-env"
CADDYFILE = REPO_ROOT / "deploy" / "caddy" / "Caddyfile"
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.test.yml"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "chat.json"
K8S = REPO_ROOT / "deploy" / "k8s"
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
CI_RUN = REPO_ROOT / ".ci" / "run"
DEPLOYMENT_DOC = REPO_ROOT / "docs" / "deployment.md"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"

SERVER_VARIABLES = ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "LOG_FORMAT")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def check_jsonschema(schema: str, path: Path) -> None:
    """Validate a file against one of check-jsonschema's bundled schemas (no network)."""
    tool = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(  # noqa: S603 - fixed tool and arguments
        [str(tool), "--builtin-schema", schema, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def server_variables() -> set[str]:
    """Return every environment variable chatproject/settings.py reads."""
    source = (REPO_ROOT / "chatproject" / "settings.py").read_text()
    return set(re.findall(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


# --- Compose ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, environment: dict[str, str]) -> Any:
    """Resolve ${NAME}, ${NAME:-default} and ${NAME:?error} as Compose does; `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2], match[3]
        current = environment.get(name, "")
        if operator in (":-", "-"):
            return current or argument
        if operator in (":?", "?") and not current:
            raise KeyError(f"{name}: {argument}")
        return current

    return _REFERENCE.sub(resolve, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run scripts/init-env and return the .env it writes."""
    target = tmp_path_factory.mktemp("compose") / ".env"
    result = subprocess.run(  # noqa: S603
        ["sh", str(INIT_ENV), str(target)],  # noqa: S607 - POSIX sh from PATH
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    return dict(line.split("=", 1) for line in target.read_text().splitlines() if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def stack(compose: dict[str, Any], generated_env: dict[str, str]) -> dict[str, Any]:
    """The Compose file as Compose would run it with the generated .env."""
    return interpolate(compose, generated_env)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def test_compose_file_matches_the_compose_specification() -> None:
    check_jsonschema("vendor.compose-spec", COMPOSE)


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"migrate", "web", "worker", "db", "redis", "proxy", "prometheus", "grafana"}


def test_the_worker_runs_jobs_with_the_webs_settings_and_answers_its_health_check(stack: dict[str, Any]) -> None:
    worker, web = stack["services"]["worker"], stack["services"]["web"]
    environment = environment_of(worker)

    assert worker["command"] == ["python", "manage.py", "run_worker"]
    assert worker["image"] == web["image"]
    # The web's settings (database, secrets, retention), plus its own listener.
    assert {name: value for name, value in environment.items() if name in environment_of(web)} == environment_of(web)
    assert environment["JOBS_WORKER_LISTEN"] == "0.0.0.0:9100"
    assert environment["HEALTHCHECK_URL"] == "http://127.0.0.1:9100/healthz"
    assert worker["expose"] == ["9100"]
    assert worker["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/healthcheck.py"]
    assert "MIGRATE" not in environment
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    # SIGTERM lets the job in hand finish: more than Compose's 10 s default.
    assert worker["stop_grace_period"] == "60s"
    assert "ports" not in worker and "container_name" not in worker


def test_web_can_run_as_several_replicas(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]

    # A fixed name or a host port would make a second replica fail to start.
    assert "container_name" not in web
    assert "ports" not in web
    assert web["expose"] == ["8000"]
    assert web["deploy"]["replicas"] == "${WEB_REPLICAS:-2}"


def test_web_waits_for_the_database_redis_and_the_migration(compose: dict[str, Any]) -> None:
    depends = compose["services"]["web"]["depends_on"]

    assert depends["db"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    for name in ("db", "redis"):
        assert "healthcheck" in compose["services"][name]


def test_only_the_migrate_service_migrates(stack: dict[str, Any]) -> None:
    assert environment_of(stack["services"]["migrate"])["MIGRATE"] == "1"
    assert "MIGRATE" not in environment_of(stack["services"]["web"])
    assert stack["services"]["migrate"]["restart"] == "no"


def test_web_reaches_the_database_and_redis_by_service_name(stack: dict[str, Any]) -> None:
    environment = environment_of(stack["services"]["web"])
    database = urlsplit(environment["DATABASE_URL"])
    redis = urlsplit(environment["REDIS_URL"])
    db_environment = environment_of(stack["services"]["db"])

    assert (database.scheme, database.hostname, database.port) == ("postgres", "db", 5432)
    assert database.username == db_environment["POSTGRES_USER"]
    assert database.password == db_environment["POSTGRES_PASSWORD"]
    assert database.path == f"/{db_environment['POSTGRES_DB']}"
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)


def image_command() -> list[str]:
    """Return the image's default command (the Dockerfile's CMD)."""
    from chatproject.tests.test_container import DOCKERFILE, parse_dockerfile

    (cmd,) = parse_dockerfile(DOCKERFILE.read_text())[-1].all("CMD")
    return cmd.words()


def test_web_runs_the_images_daphne_command_behind_the_proxy(compose: dict[str, Any]) -> None:
    command = compose["services"]["web"]["command"]

    # The image's own command (listen backlog, frame caps, log verbosity), plus
    # the client address from the proxy's X-Forwarded-For.
    assert "--proxy-headers" in command
    assert [word for word in command if word != "--proxy-headers"] == image_command()
    assert environment_of(compose["services"]["web"])["TLS_PROXY"] == "1"


def test_the_stack_environment_passes_the_servers_own_deploy_checks(stack: dict[str, Any], tmp_path: Path) -> None:
    # What the migrate service runs after migrating, with web's environment;
    # `check` opens no database connection, so "db" need not resolve here.
    environment = {name: value for name, value in os.environ.items() if name not in SERVER_VARIABLES}
    environment.update(environment_of(stack["services"]["web"]), DJANGO_SETTINGS_MODULE="chatproject.settings")
    command = stack["services"]["migrate"]["command"]
    assert command[:3] == ["python", "manage.py", "check"]

    result = subprocess.run(  # noqa: S603 - fixed interpreter and the compose file's arguments
        [sys.executable, *command[1:]], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "ERRORS:" not in result.stderr


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    def walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{path}[{index}]")
        elif isinstance(node, str):
            yield path, node

    for path, value in walk(compose, ""):
        if re.search(r"SECRET|PASSWORD|TOKEN|DSN", path.rsplit(".", 1)[-1]):
            # The value may only come from .env, and a secret has no default.
            assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*|:-)?\}", value), f"{path} = {value!r}"
        assert not re.search(r"(?i)password=[^$]", value), path


def test_every_compose_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    referenced = {match[1] for match in _REFERENCE.finditer(text)}
    required = {match[1] for match in _REFERENCE.finditer(text) if match[2] in (":?", "?")}
    example = env_example()
    documented = DEPLOYMENT_DOC.read_text()

    assert required <= set(example)
    # Secrets are placeholders that init-env replaces.
    assert all(example[name] == "change-me" for name in required if re.search("SECRET|PASSWORD|TOKEN", name))
    for name in referenced:
        assert f"`{name}`" in documented, f"{name} is not in docs/deployment.md"
    assert set(example) <= referenced


def test_env_example_names_never_reach_a_local_server() -> None:
    # `make run` reads .env as well: the stack's settings must not leak into it.
    assert not set(env_example()) & server_variables()


def test_init_env_writes_fresh_secrets_and_keeps_an_existing_file(
    generated_env: dict[str, str], tmp_path: Path
) -> None:
    example = env_example()

    assert set(generated_env) == set(example)
    for name, value in example.items():
        if value == "change-me":
            assert re.fullmatch(r"[A-Za-z0-9]{64}", generated_env[name]), name
        else:
            assert generated_env[name] == value
    existing = tmp_path / ".env"
    existing.write_text("KEEP=1\n")
    subprocess.run(["sh", str(INIT_ENV), str(existing)], check=True, capture_output=True, timeout=30)  # noqa: S603, S607
    assert existing.read_text() == "KEEP=1\n"


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    expected = {
        "db": "/var/lib/postgresql/data",
        "redis": "/data",
        "proxy": "/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for service, target in expected.items():
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in compose["services"][service]["volumes"]}
        assert mounts[target] in compose["volumes"], service


def test_every_bind_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name}: {source}"


def test_make_up_is_the_one_command(compose: dict[str, Any]) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = makefile.split("\nup:", 1)[1].split("\n\n", 1)[0]
    readme = (REPO_ROOT / "README.md").read_text()

    assert "./scripts/init-env" in recipe
    assert "docker compose up --build --detach" in recipe
    assert "make up" in readme
    assert "docs/deployment.md" in readme
    assert os.access(INIT_ENV, os.X_OK)


# --- The proxy ----------------------------------------------------------------------------------


def test_the_proxy_publishes_https_and_mounts_the_caddyfile(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]

    assert proxy["image"].startswith("caddy:")
    assert {port.rsplit(":", 1)[-1] for port in proxy["ports"]} == {"80", "443", "443/udp"}
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["environment"]["DOMAIN"] == "${DOMAIN:-localhost}"


def test_caddyfile_routes_websockets_metrics_and_grafana() -> None:
    text = CADDYFILE.read_text()
    block = re.search(r"handle /ws/\* \{(.*?)\n\t\}", text, re.DOTALL)

    assert block and "import chat_upstream" in block[1]
    assert re.search(r"handle /metrics \{\s*respond 404\s*\}", text)
    assert re.search(r"handle /grafana/\* \{[^}]*reverse_proxy grafana:3000", text)
    assert re.search(r"dynamic a \{\s*name web\s*port 8000", text)


def _adapted_routes(domain: str) -> list[dict[str, Any]]:
    result = subprocess.run(  # noqa: S603
        ["caddy", "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DOMAIN": domain},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    (server,) = config["apps"]["http"]["servers"].values()
    (site,) = [route for route in server["routes"] if route.get("match", [{}])[0].get("host") == [domain]]
    return site["handle"][0]["routes"]


def _handlers(route: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every handler under a route, flattening subroutes."""
    found = []
    for handler in route.get("handle", []):
        found.append(handler)
        for inner in handler.get("routes", []):
            found.extend(_handlers(inner))
    return found


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get install caddy)")
def test_caddy_proxies_websockets_to_every_web_replica() -> None:
    routes = _adapted_routes("chat.example.com")
    by_path = {tuple(route["match"][0]["path"]): route for route in routes if "match" in route}

    (proxy,) = [h for h in _handlers(by_path[("/ws/*",)]) if h["handler"] == "reverse_proxy"]
    assert proxy["dynamic_upstreams"] == {"source": "a", "name": "web", "port": "8000", "refresh": 5_000_000_000}
    assert proxy["load_balancing"]["selection_policy"]["policy"] == "least_conn"
    # Upgrade and Connection pass untouched: nothing deletes or rewrites them.
    request_headers = proxy.get("headers", {}).get("request", {})
    assert not {"Upgrade", "Connection"} & {*request_headers.get("set", {}), *request_headers.get("delete", [])}
    assert request_headers["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    # The WebSocket stream is not compressed by the proxy.
    assert not [h for h in _handlers(by_path[("/ws/*",)]) if h["handler"] == "encode"]

    (metrics,) = _handlers(by_path[("/metrics",)])[1:]
    assert (metrics["handler"], metrics["status_code"]) == ("static_response", 404)
    grafana = [h for h in _handlers(by_path[("/grafana/*",)]) if h["handler"] == "reverse_proxy"]
    assert grafana[0]["upstreams"] == [{"dial": "grafana:3000"}]


# --- Prometheus ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return load_yaml(PROMETHEUS)


def test_prometheus_scrapes_every_replica_with_the_token(prometheus: dict[str, Any], compose: dict[str, Any]) -> None:
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "chat"]
    service = compose["services"]["prometheus"]

    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    # Compose mounts each secret at /run/secrets/<name>; the secret and web's token are one .env variable.
    (secret,) = service["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    token_variable = compose["secrets"][secret]["environment"]
    assert environment_of(compose["services"]["web"])["METRICS_TOKEN"].startswith(f"${{{token_variable}:?")
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["web"]
    assert (discovery["type"], str(discovery["port"])) == ("A", compose["services"]["web"]["expose"][0])
    assert "./deploy/prometheus:/etc/prometheus:ro" in service["volumes"]
    assert (PROMETHEUS.parent / prometheus["rule_files"][0]).resolve() == ALERTS.resolve()


def test_prometheus_scrapes_every_job_worker_with_the_token(
    prometheus: dict[str, Any], compose: dict[str, Any]
) -> None:
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "chat-worker"]
    (chat,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "chat"]

    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == chat["authorization"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    assert (discovery["type"], str(discovery["port"])) == ("A", compose["services"]["worker"]["expose"][0])


def test_every_alert_says_what_to_do(prometheus: dict[str, Any]) -> None:
    operations = OPERATIONS_DOC.read_text()
    headings = {line[4:].strip().lower() for line in operations.splitlines() if line.startswith("### ")}

    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert anchor in headings, f"docs/operations.md has no section for {rule['alert']}"


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def test_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    for file in PROMETHEUS.parent.glob("*.yml"):
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / "token").write_text("a-token\n")
    config = tmp_path / "prometheus.yml"
    config.write_text(config.read_text().replace("/run/secrets/metrics_token", str(tmp_path / "token")))

    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)  # noqa: S603

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    result = subprocess.run(  # noqa: S603
        [promtool, "test", "rules", ALERT_TESTS.name], cwd=ALERTS.parent, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_queries() -> list[str]:
    return [rule["expr"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose: dict[str, Any], dashboard: Any) -> None:
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "chat.yml")["providers"]
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])

    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == (
        f"{provider['options']['path']}/{DASHBOARD.name}"
    )
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    uids |= {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert uids == {source["uid"]}


def test_dashboard_shows_what_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    queries = "\n".join(dashboard_queries(dashboard))

    for needed in (
        "chat_websocket_connections",  # connections
        "rate(chat_messages_posted_total",  # messages per second
        "chat_delivery_latency_seconds_bucket",  # delivery latency
        'status=~"5.."',  # errors
        "chat_channel_layer_errors_total",
        "chat_db_pool_connections",  # the database pool
        "chat_db_pool_requests_waiting",
    ):
        assert needed in queries, needed
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def _exposed_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [])
        names.update(family.name + suffix for suffix in suffixes)
    return names


@pytest.mark.django_db
def test_dashboard_and_alerts_ask_only_for_metrics_the_server_exposes(settings: Any, dashboard: Any) -> None:
    settings.DEBUG = True
    exposed = _exposed_names(Client().get("/metrics").content.decode())
    builtin = {"up"}  # Prometheus adds it to every target
    functions = {"sum", "rate", "increase", "histogram_quantile", "topk", "clamp_min", "vector", "absent", "max"}

    for query in [*dashboard_queries(dashboard), *alert_queries()]:
        without_labels = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", query))
        words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_labels))
        metrics = {word for word in words if "_" in word or word in builtin} - functions
        metrics -= {"by", "le", "instance", "state", "type", "code", "route", "reason", "operation", "outcome"}
        assert metrics, query
        missing = metrics - exposed - builtin
        assert not missing, f"{query!r} asks for {missing}, which /metrics does not expose"


def test_dashboard_queries_are_valid_promql(promtool: str, dashboard: Any, tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": query}
                    for index, query in enumerate(dashboard_queries(dashboard))
                ],
            }
        ]
    }
    file = tmp_path / "dashboard-rules.yml"
    file.write_text(yaml.safe_dump(rules))

    result = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, timeout=60)  # noqa: S603

    assert result.returncode == 0, result.stdout + result.stderr


# --- The GitHub workflow ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_yaml(WORKFLOW)


def make_commands(lines: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    """Parse each `make` command line: its target, the variables it sets or unsets, its PYTEST_ARGS."""
    commands = []
    for line, step_environment in lines:
        if not re.search(r"(^|\s)make \w", line) or line.startswith(("#", "echo")):
            continue
        words = shlex.split(line)
        target = words[words.index("make") + 1]
        before = words[: words.index("make")]
        unset = {words[index + 1] for index, word in enumerate(before) if word == "-u"}
        assigned = dict(word.split("=", 1) for word in before if "=" in word)
        assigned.update(word.split("=", 1) for word in words[words.index("make") + 2 :] if "=" in word)
        commands.append(
            {
                "target": target,
                "unset": unset,
                "set": {**step_environment, **assigned},
                "pytest_args": assigned.get("PYTEST_ARGS", ""),
            }
        )
    return commands


def ci_run_lines() -> list[tuple[str, dict[str, str]]]:
    text = CI_RUN.read_text().replace("\\\n", " ")
    return [(line.strip(), {}) for line in text.splitlines()]


def run_lines(job: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Return (command line, step environment) for each line of each `run` step."""
    lines = []
    for step in job["steps"]:
        for line in step.get("run", "").splitlines():
            lines.append((line.strip(), {**job.get("env", {}), **step.get("env", {})}))
    return lines


def test_workflow_matches_the_github_workflow_schema() -> None:
    check_jsonschema("vendor.github-workflows", WORKFLOW)


def test_workflow_runs_on_pushes_tags_and_pull_requests(workflow: dict[str, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # PyYAML reads a bare `on` as True

    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"] == ["v*"]
    assert workflow["permissions"] == {"contents": "read"}


def test_workflow_mirrors_ci_run(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    workflow_commands = make_commands([line for job in jobs.values() for line in run_lines(job)])
    ci_commands = make_commands(ci_run_lines())

    assert [command["target"] for command in ci_commands] == ["lint", "test", "test"]
    for expected in ci_commands:
        matches = [
            command
            for command in workflow_commands
            if command["target"] == expected["target"]
            and command["unset"] == expected["unset"]
            and command["pytest_args"] == expected["pytest_args"]
            and set(expected["set"]) <= set(command["set"])
        ]
        assert matches, f"the workflow has no step like .ci/run's make {expected}"
        if "REQUIRE_SERVICES" in expected["set"]:
            assert matches[0]["set"]["REQUIRE_SERVICES"] == "1"

    makefile = (REPO_ROOT / "Makefile").read_text()
    for tool in ("ruff check .", "ruff format --check .", "mypy ."):
        assert f"$(BIN)/{tool}" in makefile  # what make lint runs: lint, format check, type check

    # The service containers answer where the tests look for them.
    (with_services,) = [command for command in workflow_commands if "REQUIRE_SERVICES" in command["set"]]
    database = urlsplit(with_services["set"]["DATABASE_URL"])
    redis = urlsplit(with_services["set"]["REDIS_URL"])
    services = jobs["test"]["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert f"{database.port}:5432" in services["postgres"]["ports"]
    assert database.hostname == redis.hostname == "127.0.0.1"
    assert database.password == services["postgres"]["env"]["POSTGRES_PASSWORD"]
    assert database.path == "/" + services["postgres"]["env"]["POSTGRES_DB"]
    assert services["redis"]["image"].startswith("redis:")
    assert f"{redis.port}:6379" in services["redis"]["ports"]
    for service in services.values():
        assert "--health-cmd" in service["options"]


def test_workflow_builds_the_image_and_pushes_it_only_for_a_tag(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    build = [step for step in jobs["image"]["steps"] if step.get("uses", "").startswith("docker/build-push-action")]
    release = jobs["release"]
    push = [step for step in release["steps"] if step.get("uses", "").startswith("docker/build-push-action")]

    assert build and build[0]["with"].get("push", False) is False
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert set(release["needs"]) == {"lint", "test", "image"}
    assert release["permissions"]["packages"] == "write"
    assert push and push[0]["with"]["push"] is True
    assert push[0]["with"]["build-args"] == "CHAT_VERSION=${{ github.ref_name }}"
    login = [step for step in release["steps"] if step.get("uses", "").startswith("docker/login-action")]
    assert login[0]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"


# --- Kubernetes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    found = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def test_kustomization_lists_every_manifest(manifests: Any) -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])

    assert listed == {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert {kind for kind, _ in manifests} == {
        "Namespace",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
    }


def test_service_ingress_and_probes_reach_the_web_pods(manifests: Any) -> None:
    deployment = manifests[("Deployment", "chat-web")]
    service = manifests[("Service", "chat-web")]
    ingress = manifests[("Ingress", "chat")]
    config = manifests[("ConfigMap", "chat-config")]["data"]
    pod = deployment["spec"]["template"]
    (web,) = pod["spec"]["containers"]
    host = config["ALLOWED_HOSTS"].split(",")[0]

    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = web["ports"]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"] and port["containerPort"] == 8000
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert (backend["name"], backend["port"]["name"]) == ("chat-web", service_port["name"])
    assert rule["host"] == host == ingress["spec"]["tls"][0]["hosts"][0]
    assert config["CSRF_TRUSTED_ORIGINS"] == f"https://{host}"
    probes = {name: web[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe in probes.values():
        # Django answers 400 to a Host it does not know; the kubelet would send the pod's IP.
        assert probe["httpHeaders"] == [{"name": "Host", "value": host}]
        assert probe["port"] == port["name"]


def test_web_and_worker_pods_share_one_media_volume_at_media_root(manifests: Any) -> None:
    claim = manifests[("PersistentVolumeClaim", "chat-media")]
    media_root = manifests[("ConfigMap", "chat-config")]["data"]["MEDIA_ROOT"]

    # Several web pods and the workers, on any node, read and write the same files.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert re.search(r"MEDIA_ROOT=(\S+)", (REPO_ROOT / "Dockerfile").read_text())[1] == media_root  # type: ignore[index]
    for name in ("chat-web", "chat-worker"):
        spec = manifests[("Deployment", name)]["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        (container,) = spec["containers"]
        mounts = [mount for mount in container["volumeMounts"] if mount["mountPath"] == media_root]
        assert len(mounts) == 1, name
        assert volumes[mounts[0]["name"]]["persistentVolumeClaim"] == {"claimName": "chat-media"}
        # Written by the server's own (non-root) user.
        assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_pods_run_as_the_images_unprivileged_user(manifests: Any) -> None:
    uid = re.search(r"useradd --system --uid (\d+)", (REPO_ROOT / "Dockerfile").read_text())
    assert uid
    for key in (("Deployment", "chat-web"), ("Deployment", "chat-worker"), ("Job", "chat-migrate")):
        spec = manifests[key]["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == int(uid[1])
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["image"] == "chat-server"


def test_only_the_job_migrates_and_secrets_stay_out_of_the_configmap(manifests: Any) -> None:
    config = manifests[("ConfigMap", "chat-config")]["data"]
    job = manifests[("Job", "chat-migrate")]["spec"]["template"]["spec"]["containers"][0]
    deployment = manifests[("Deployment", "chat-web")]["spec"]["template"]["spec"]

    assert {"name": "MIGRATE", "value": "1"} in job["env"]
    assert all(variable["name"] != "MIGRATE" for variable in deployment["containers"][0].get("env", []))
    assert "migrate --check" in " ".join(deployment["initContainers"][0]["args"])
    assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN", "SENTRY_DSN"} & set(config)
    assert set(config) <= server_variables()
    for container in [job, *deployment["containers"]]:
        sources = container["envFrom"]
        assert {"secretRef": {"name": "chat-secrets"}} in sources
        assert {"configMapRef": {"name": "chat-config"}} in sources
    web_args = deployment["containers"][0]["args"]
    assert "--proxy-headers" in web_args
    assert [word for word in web_args if word != "--proxy-headers"] == image_command()


def test_the_worker_deployment_runs_jobs_after_the_migration_and_is_probed(manifests: Any) -> None:
    deployment = manifests[("Deployment", "chat-worker")]
    pod = deployment["spec"]["template"]
    (worker,) = pod["spec"]["containers"]
    web_pod = manifests[("Deployment", "chat-web")]["spec"]["template"]["spec"]

    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    # The web Service must not send requests to worker pods.
    assert not manifests[("Service", "chat-web")]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert worker["args"] == ["python", "manage.py", "run_worker"]
    assert pod["spec"]["initContainers"] == web_pod["initContainers"]
    assert worker["envFrom"] == web_pod["containers"][0]["envFrom"]
    assert all(variable["name"] != "MIGRATE" for variable in worker.get("env", []))
    (port,) = worker["ports"]
    assert {"name": "JOBS_WORKER_LISTEN", "value": f"0.0.0.0:{port['containerPort']}"} in worker["env"]
    for probe in ("startupProbe", "livenessProbe"):
        assert worker[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    # SIGTERM lets the job in hand finish.
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 60


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_the_manifests() -> None:
    result = subprocess.run(  # noqa: S603
        ["kubectl", "kustomize", str(K8S)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert all(document["metadata"].get("namespace", "chat") == "chat" for document in documents)
    deployment = next(document for document in documents if document["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith("ghcr.io/")


# --- Documentation -----------------------------------------------------------------------------------


def test_every_environment_variable_is_in_the_deployment_table() -> None:
    documented = DEPLOYMENT_DOC.read_text()
    entrypoint = (REPO_ROOT / "deploy" / "entrypoint.sh").read_text()
    healthcheck = (REPO_ROOT / "deploy" / "healthcheck.py").read_text()
    variables = server_variables()
    variables |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", entrypoint))
    variables |= set(re.findall(r"os\.environ\.get\(\"([A-Z][A-Z0-9_]*)\"", healthcheck))

    missing = sorted(name for name in variables if not re.search(rf"^\|[^\n]*`{name}`", documented, re.MULTILINE))
    assert not missing, f"docs/deployment.md's tables lack {missing}"


def test_deployment_doc_covers_what_the_issue_asks_for() -> None:
    text = DEPLOYMENT_DOC.read_text()

    for heading in (
        "## One host with Docker Compose",
        "## Scaling out",
        "## Kubernetes",
        "## Backups and restores",
        "## Upgrades and migrations",
        "## Configuration",
    ):
        assert heading in text
    for subject in ("PgBouncer", "Sentinel", "pg_dump", "pg_restore", "deploy/k8s"):
        assert subject in text


def test_a_transaction_pooler_turns_off_server_side_cursors_and_prepared_statements() -> None:
    from chatproject.tests.test_settings import loaded

    url = "postgres://chat:secret@pgbouncer:6432/chat"
    pooled = loaded(DATABASE_URL=url, DATABASE_TRANSACTION_POOLER="1")["DB_OPTIONS"]
    direct = loaded(DATABASE_URL=url)["DB_OPTIONS"]

    assert "prepare_threshold" in pooled and pooled["prepare_threshold"] is None
    assert "prepare_threshold" not in direct
    assert pooled["pool"] == direct["pool"]


def test_the_configmap_with_the_documented_secrets_passes_the_deploy_checks(manifests: Any) -> None:
    config = manifests[("ConfigMap", "chat-config")]["data"]
    environment = {name: value for name, value in os.environ.items() if name not in SERVER_VARIABLES}
    environment.update(
        config,
        SECRET_KEY="k9Qz-7vR2mXw4LpT8sYb1NcJ6hFd3GaE5uKo0iVn_WqZr2TyUx",
        DATABASE_URL="postgres://chat:secret@db.internal:5432/chat",
        REDIS_URL="rediss://:secret@redis.internal:6379/0",
        METRICS_TOKEN="a-scrape-token",
        SENTRY_DSN="",
        DJANGO_SETTINGS_MODULE="chatproject.settings",
    )
    job = manifests[("Job", "chat-migrate")]["spec"]["template"]["spec"]["containers"][0]

    result = subprocess.run(  # noqa: S603 - fixed interpreter and the manifest's arguments
        [sys.executable, *job["args"][1:]], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "ERRORS:" not in result.stderr
