"""docker-compose.yml runs what the production smoke test (make smoke) ran: same commands, same variables, same
healthchecks. Docker itself cannot run on the CI machine, so this is what ties the deployment to the proof."""

import re
from pathlib import Path

import pytest
import yaml

from smoke import stack

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _healthcheck(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        test = test[1].split()
    elif test[0] == "CMD":
        test = test[1:]
    return [part.replace("$$", "$") for part in test]


@pytest.mark.parametrize("name", ["init", "web", "worker", "beat"])
def test_each_service_runs_the_command_and_variables_the_smoke_test_ran(compose, name):
    service = compose[name]
    assert service["command"] == stack.COMMANDS[name]
    expected = set(stack.APP_VARIABLES) | set(stack.SERVICE_VARIABLES[name])
    assert set(service["environment"]) == expected, (
        f"compose gives {name} {sorted(set(service['environment']) - expected)} that the smoke test does not set, "
        f"and lacks {sorted(expected - set(service['environment']))}"
    )
    if name in stack.HEALTHCHECKS:
        assert _healthcheck(service) == stack.HEALTHCHECKS[name]
    # the production switches have the values the smoke test ran with
    smoke_env = stack.service_environment(
        name,
        stack.Ports(1, 2, "postgres://x/y", "redis://x/0", "s", "t", "/w", "c", "k", "a"),
        path="",
        home="",
        hostname="h",
    )
    for var in ("DEBUG", "LOG_FORMAT", "AWS_S3_REGION_NAME", "SENTRY_DSN"):
        if isinstance(service["environment"][var], str) and "$" not in service["environment"][var]:
            assert service["environment"][var] == smoke_env[var], var
    assert not set(stack.SMOKE_ONLY) & set(service["environment"]), "a smoke-only variable is set in compose"


def test_the_gpu_worker_gets_the_workers_variables_and_a_healthcheck(compose):
    gpu = compose["gpu-worker"]
    assert set(gpu["environment"]) == set(compose["worker"]["environment"])
    assert gpu["profiles"] == ["gpu"], "without a GPU host `docker compose up` must not need the NVIDIA runtime"
    assert gpu["command"][:6] == ["python3", "-m", "celery", "-A", "config", "worker"]
    assert "ping" in _healthcheck(gpu)


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    for name, service in compose.items():
        if name == "init":  # a one-shot job: the others wait until it has completed successfully
            assert service["restart"] == "no"
            continue
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep == "init" else "service_healthy"
            assert cond == {"condition": want}, f"{name} -> {dep}: {cond}"
    for name in ("web", "worker", "beat"):
        assert set(compose[name]["depends_on"]) == {"init", "postgres", "redis", "minio"}
    assert compose["caddy"]["depends_on"] == {
        "web": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
    }


def test_redis_keeps_queued_tasks_across_a_restart_and_only_caddy_is_public(compose):
    assert compose["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert any(v.endswith(":/data") for v in compose["redis"]["volumes"])
    public = {
        name for name, s in compose.items() if any(not str(p).startswith("127.0.0.1:") for p in s.get("ports", []))
    }
    assert public == {"caddy"}, "gunicorn and MinIO are reached through Caddy (TLS), nothing else is published"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile and "reverse_proxy minio:9000" in caddyfile
    env = compose["web"]["environment"]
    assert env["AWS_S3_PUBLIC_ENDPOINT_URL"] == "https://${MEDIA_DOMAIN:?set MEDIA_DOMAIN in .env}"
    assert env["PUBLIC_BASE_URL"] == "https://${DOMAIN}" and env["DEBUG"] == "0"


def test_env_example_names_every_variable_compose_requires():
    text = (ROOT / "docker-compose.yml").read_text()
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    optional = set(re.findall(r"\$\{([A-Z_]+):-", text))
    assert required <= example, f".env.example lacks {sorted(required - example)}"
    assert optional <= example, f".env.example lacks {sorted(optional - example)}"
