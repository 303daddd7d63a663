"""compose.yaml against the Compose specification's JSON schema, and against june's own code.

The schema is the one check-jsonschema vendors (check_jsonschema/builtin_schemas/vendor/
compose-spec.json, from github.com/compose-spec/compose-spec): no network at test time.
"""

from __future__ import annotations

import importlib.resources
import json
import re

import jsonschema
import pytest
import yaml

from june.llm.presets import GPU_PRESET, get_preset
from june.llm.server import VLLM_MODULE, vllm_command
from june.llm.settings import LLMSettings
from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.dockerfile import stages

COMPOSE_FILES = [ROOT / "compose.yaml", DEPLOY / "compose.speech-gpu.yaml"]


def load(path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(ROOT / "compose.yaml")


def compose_schema() -> dict:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def gpu_vllm_argv() -> tuple[list[str], dict[str, str]]:
    """What `june llm` runs for the default GPU preset on 0.0.0.0:8000, minus `python -m module`."""
    preset = get_preset(GPU_PRESET)
    argv, env = vllm_command(
        LLMSettings(host="0.0.0.0", port=8000, model=GPU_PRESET), preset, preset.model, base_env={}
    )
    assert argv[1:3] == ["-m", VLLM_MODULE]
    return argv[3:], env


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_spec(path):
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load(path))]
    assert not errors, "\n".join(errors)


def test_schema_check_can_fail(compose):
    broken = {
        **compose,
        "services": {**compose["services"], "gateway": {**compose["services"]["gateway"], "ports": "8000"}},
    }
    assert list(jsonschema.Draft202012Validator(compose_schema()).iter_errors(broken))


def test_vllm_flags_are_june_llm_presets(compose):
    argv, env = gpu_vllm_argv()
    vllm = compose["services"]["vllm"]
    assert vllm["entrypoint"] == ["python3", "-m", VLLM_MODULE]
    assert vllm["command"] == argv
    for name, value in env.items():
        assert vllm["environment"][name] == value


def test_vllm_image_is_the_locked_vllm_version(compose):
    lock = (ROOT / "uv.lock").read_text()
    version = re.search(r'name = "vllm"\nversion = "([^"]+)"', lock).group(1)
    assert compose["services"]["vllm"]["image"] == f"vllm/vllm-openai:v{version}"


def test_vllm_has_gpu_cache_and_healthcheck(compose):
    vllm = compose["services"]["vllm"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert any(v.endswith(":/root/.cache/huggingface") for v in vllm["volumes"])
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert int(vllm["healthcheck"]["start_period"].rstrip("s")) >= 600


def test_profiles(compose):
    services = compose["services"]
    assert {n for n, s in services.items() if "profiles" not in s} == {"vllm", "speech", "gateway"}
    assert {n for n, s in services.items() if "bots" in s.get("profiles", [])} == {"telegram-bot", "discord-bot"}
    assert {n for n, s in services.items() if "observability" in s.get("profiles", [])} == {
        "otel-collector", "jaeger", "prometheus", "grafana",
    }  # fmt: skip
    assert services["smoke"]["profiles"] == ["smoke"]


def test_no_required_variables(compose):
    # `${VAR:?}` fails `docker compose up` even for services of profiles that are not enabled.
    assert not re.search(r"\$\{[A-Za-z0-9_]+:?\?", json.dumps(compose))


def test_june_services_build_existing_targets(compose):
    dockerfile = (ROOT / "deploy" / "june.Dockerfile").read_text()
    for name, service in compose["services"].items():
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).is_file()
            assert f" AS {service['build']['target']}\n" in dockerfile, name
            assert service["env_file"] == [{"path": ".env", "required": False}], name


def test_mounted_files_exist(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_prometheus_scrapes_every_service(compose):
    prom = load(DEPLOY / "observability" / "prometheus.yml")
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"vllm:8000", "gateway:8000", "speech:8001", "telegram-bot:8081", "discord-bot:8082"} <= targets
    for target in targets - {"localhost:9090"}:
        assert target.split(":")[0] in compose["services"], target


def test_grafana_provisioning(compose):
    prov = DEPLOY / "observability" / "grafana" / "provisioning"
    sources = load(prov / "datasources" / "june.yaml")["datasources"]
    uids = {s["uid"] for s in sources}
    dashboards = load(prov / "dashboards" / "june.yaml")["providers"][0]["options"]["path"]
    assert any(v.endswith(f":{dashboards}:ro") for v in compose["services"]["grafana"]["volumes"])
    dash = json.loads((DEPLOY / "observability" / "grafana" / "dashboards" / "june.json").read_text())
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert all(t["expr"] for t in panel["targets"]), panel["title"]


COMPOSE_PACKAGES = {"speech": "speech", "gateway": "gateway", "telegram-bot": "bots", "discord-bot": "bots"}
"""compose services built from deploy/june.Dockerfile → the june package each one runs."""


def serves_ready(package: str) -> bool:
    """Whether the package's code has a /ready route."""
    return any(re.search(r"""["']/ready["']""", p.read_text()) for p in (ROOT / package).rglob("*.py"))


def health_check(compose: dict, name: str) -> str:
    """The health check a compose service runs: its own `healthcheck`, else its image target's HEALTHCHECK."""
    service = compose["services"][name]
    if "healthcheck" in service:
        return " ".join(service["healthcheck"]["test"])
    target = service["build"]["target"]
    return stages(DEPLOY / "june.Dockerfile")[target].healthcheck() or ""


def test_service_healthy_waits_for_ready_where_it_exists(compose):
    assert serves_ready("speech") and serves_ready("gateway")
    waited = set()
    for name, service in compose["services"].items():
        depends = service.get("depends_on") or {}
        for dep, how in depends.items() if isinstance(depends, dict) else []:  # a list: started, not healthy
            if isinstance(how, dict) and how.get("condition") == "service_healthy":
                waited.add(dep)
                check = health_check(compose, dep)
                package = COMPOSE_PACKAGES.get(dep)
                want = "/ready" if package and serves_ready(package) else "/health"
                assert want in check, f"{name} waits for {dep}, whose health check should ask {want}: {check}"
    assert {"speech", "gateway"} <= waited  # the gateway waits for speech's models, the bots for the gateway
    for name, package in COMPOSE_PACKAGES.items():
        if serves_ready(package):
            assert "/ready" in health_check(compose, name), name
