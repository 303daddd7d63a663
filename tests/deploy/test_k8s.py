"""deploy/k8s: rendered like `kustomize build`, validated against the Kubernetes OpenAPI schemas
(kubernetes-validate ships them), and cross-checked: names, ports, secrets, vLLM flags, policies."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from june.llm.server import VLLM_MODULE
from tests.deploy.conftest import K8S
from tests.deploy.kustomize import KustomizeError, build
from tests.deploy.test_compose import gpu_vllm_argv

K8S_VERSION = "1.31"
KUSTOMIZATIONS = [K8S / "base", *sorted((K8S / "overlays").iterdir())]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda p: p.relative_to(K8S).as_posix())
def rendered(request) -> list[dict]:
    return build(request.param)


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return build(K8S / "base")


@pytest.fixture(scope="module")
def scale_out() -> list[dict]:
    return build(K8S / "overlays" / "scale-out")


def get(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(doc: dict) -> dict | None:
    return doc.get("spec", {}).get("template", {}).get("spec")


def test_resources_validate_against_the_kubernetes_schemas(rendered):
    errors = []
    for doc in rendered:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {e.message}")
    assert not errors, "\n".join(errors)


def test_smoke_job_validates():
    (job,) = list(yaml.safe_load_all((K8S / "jobs" / "smoke.yaml").read_text()))
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:3] == ["python", "-m", "june.smoke"]


def test_validation_can_fail(base):
    broken = {**get(base, "Service", "gateway"), "spec": {"ports": [{"port": "eighty"}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_everything_is_in_the_namespace(rendered):
    for doc in rendered:
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "june", doc["metadata"]["name"]


def test_vllm_runs_june_llm_flags_on_a_gpu_with_a_cache(base):
    vllm = get(base, "Deployment", "vllm")
    (c,) = pod_spec(vllm)["containers"]
    argv, env = gpu_vllm_argv()
    assert c["command"] == ["python3", "-m", VLLM_MODULE]
    assert c["args"] == argv
    assert {e["name"]: e.get("value") for e in c["env"]}.items() >= env.items()
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    claim = pod_spec(vllm)["volumes"][0]["persistentVolumeClaim"]["claimName"]
    get(base, "PersistentVolumeClaim", claim)
    env = {e["name"]: e.get("value") for e in c["env"]}
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "cache"]
    assert env["HF_HOME"].startswith(mount["mountPath"] + "/")  # the weights live on the claim


def test_speech_and_gateway_autoscale(rendered):
    for name in ("speech", "gateway"):
        hpa = get(rendered, "HorizontalPodAutoscaler", name)
        ref = hpa["spec"]["scaleTargetRef"]
        get(rendered, ref["kind"], ref["name"])


def test_services_select_pods_and_name_their_ports(rendered):
    workloads = [d for d in rendered if pod_spec(d)]
    for svc in (d for d in rendered if d["kind"] == "Service"):
        matches = [
            w
            for w in workloads
            if svc["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, svc["metadata"]["name"]
        ports = {p["name"] for c in pod_spec(matches[0])["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, svc["metadata"]["name"]


def test_secret_and_config_references_exist(rendered):
    secret = get(rendered, "Secret", "june-secrets")["stringData"]
    config = get(rendered, "ConfigMap", "june-config")["data"]
    for w in (d for d in rendered if pod_spec(d)):
        for c in pod_spec(w)["containers"]:
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] == "june-config"
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "june-secrets" and ref["key"] in secret, (w["metadata"]["name"], ref)
    assert config["JUNE_BOT_BASE_URL"] == "http://gateway:8000"


def test_secrets_hold_placeholders_only(base):
    for key, value in get(base, "Secret", "june-secrets")["stringData"].items():
        assert value == "" or "replace-me" in value, key


def test_only_the_gateway_reaches_vllm_and_speech(base):
    policies = [d for d in base if d["kind"] == "NetworkPolicy"]
    for app, port in (("vllm", 8000), ("speech", 8001)):
        (policy,) = [p for p in policies if p["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": app}]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        pods = [f["podSelector"]["matchLabels"] for f in rule["from"] if "podSelector" in f]
        assert pods == [{"app.kubernetes.io/name": "gateway"}]
        assert all(
            "podSelector" in f or f["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
            for f in rule["from"]
        )
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]


def test_gateway_wiring(base):
    (c,) = pod_spec(get(base, "Deployment", "gateway"))["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["JUNE_GATEWAY_LLM_URL"] == "http://vllm:8000"
    assert env["JUNE_GATEWAY_SPEECH_URL"] == "http://speech:8001"
    assert env["JUNE_GATEWAY_REDIS_URL"].startswith("redis://redis:6379")
    assert c["image"] == "june-gateway:0.1.0"


def test_scale_out_overlay(scale_out):
    assert get(scale_out, "Deployment", "vllm")["spec"]["replicas"] == 2
    assert get(scale_out, "PersistentVolumeClaim", "vllm-cache")["spec"]["accessModes"] == ["ReadWriteMany"]
    telegram = get(scale_out, "Deployment", "telegram-bot")
    assert telegram["spec"]["replicas"] == 2
    (c,) = pod_spec(telegram)["containers"]
    assert any(e["name"] == "JUNE_TELEGRAM_WEBHOOK_URL" for e in c["env"]), (
        "more than one Telegram replica needs a webhook"
    )
    (gw,) = pod_spec(get(scale_out, "Deployment", "gateway"))["containers"]
    assert gw["image"] == "registry.example.com/june/june-gateway:0.1.0"


def test_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\ncommonLabels: {a: b}\n")
    with pytest.raises(KustomizeError, match="commonLabels"):
        build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError, match=r"missing\.yaml"):
        build(tmp_path)


def _probe_path(container: dict, probe: str) -> str:
    return container[probe]["httpGet"]["path"]


def test_readiness_waits_for_ready_where_a_pod_reports_its_own(base):
    # speech's /health answers while its models load; /ready only once they are in memory. The
    # gateway's /ready reports the upstreams every replica shares, so its pods stay on /health
    # (see gateway.yaml); vLLM's /health already waits for the model, the bots have no /ready.
    expected = {
        "speech": "/ready",
        "gateway": "/health",
        "vllm": "/health",
        "telegram-bot": "/health",
        "discord-bot": "/health",
    }
    for name, path in expected.items():
        (c,) = pod_spec(get(base, "Deployment", name))["containers"]
        assert _probe_path(c, "readinessProbe") == path, name
        assert _probe_path(c, "livenessProbe") == "/health", name  # loading models is not a reason to restart
    (speech,) = pod_spec(get(base, "Deployment", "speech"))["containers"]
    assert _probe_path(speech, "startupProbe") == "/health"


def test_every_pod_runs_unprivileged(rendered):
    for w in (d for d in rendered if pod_spec(d)):
        spec = pod_spec(w)
        for c in spec["containers"]:
            where = f"{w['metadata']['name']}/{c['name']}"
            ctx = c.get("securityContext", {})
            assert ctx.get("runAsNonRoot", spec.get("securityContext", {}).get("runAsNonRoot")) is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), where


def test_vllm_writes_only_to_its_volumes(base):
    vllm = get(base, "Deployment", "vllm")
    spec = pod_spec(vllm)
    (c,) = spec["containers"]
    assert spec["securityContext"]["runAsUser"] != 0 and spec["securityContext"]["fsGroup"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = [m["mountPath"] for m in c["volumeMounts"]]
    for name in ("HOME", "HF_HOME", "VLLM_CACHE_ROOT"):
        assert any(env[name] == m or env[name].startswith(m + "/") for m in mounts), name
    assert "/tmp" in mounts and env["USER"]  # an arbitrary uid has no passwd entry to name it


def test_redis_never_evicts_limits_or_history(base):
    (c,) = pod_spec(get(base, "Deployment", "redis"))["containers"]
    args = c["args"]
    policy = args[args.index("--maxmemory-policy") + 1]
    assert policy == "noeviction", "an evicted rate counter lets a key past its limit; an evicted history loses a chat"
