"""deploy/kubernetes, rendered by `kubectl kustomize` as `kubectl apply -k` sends it: every piece an
install needs is there, the probes ask the processes' health endpoints, nothing runs as root, the
Secret is referenced by name and never shipped, and the config the pods get is one kubemaint accepts."""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from bot.chat.config import load_settings
from lab.testing import LabProcess
from tests.manifests import BASE, EXAMPLE, EXTERNAL_REDIS, ROOT, SECRET, kubectl, one, overlay_on, render

RENDERINGS = {"base": BASE, "example": EXAMPLE, "example-external-redis": EXTERNAL_REDIS}
KUBEMAINT_DEPLOYMENTS = {"kubemaint-bot": "serve", "kubemaint-worker": "worker"}
# What the user's Secret holds (docs/operations.md): stand-ins of the right shape for loading the config.
SECRET_STAND_INS = {"slack-bot-token": "xoxb-1-stand-in", "slack-app-token": "xapp-1-stand-in",
                    "redis-url": "rediss://:password@redis.example.com:6380/0"}
README = ROOT / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"


@pytest.fixture(scope="module", params=list(RENDERINGS))
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(RENDERINGS[request.param])


def pod_templates(objects: list[dict]) -> list[tuple[str, dict]]:
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objects
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def kinds(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_the_base_holds_every_piece_of_an_install():
    objects = render(BASE)
    names = {(kind, re.sub(r"-[a-z0-9]{10}$", "", name)) for kind, name in kinds(objects)}  # the config's hash
    assert names == {
        ("Namespace", "kubemaint"), ("ServiceAccount", "kubemaint"), ("ClusterRole", "kubemaint"),
        ("ClusterRoleBinding", "kubemaint"), ("ConfigMap", "kubemaint"), ("Deployment", "kubemaint-bot"),
        ("Deployment", "kubemaint-worker"), ("StatefulSet", "redis"), ("Service", "redis")}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubemaint"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubemaint", "namespace": "kubemaint"}]
    for _, spec in pod_templates(objects):
        if spec["containers"][0]["image"].split(":")[0].endswith("kubemaint"):
            assert spec["serviceAccountName"] == "kubemaint"


def test_the_bot_and_the_workers_run_their_command_with_probes_on_the_metrics_port(rendered):
    _, objects = rendered
    for name, command in KUBEMAINT_DEPLOYMENTS.items():
        (container,) = one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [command]
        assert {"name": "metrics", "containerPort": 9102} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["startupProbe"]["httpGet"]["port"] == "metrics"


def test_no_container_runs_as_root_or_writes_its_image(rendered):
    _, objects = rendered
    templates = pod_templates(objects)
    assert len(templates) >= 2
    for name, spec in templates:
        pod = spec.get("securityContext") or {}
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = {**pod, **(container.get("securityContext") or {})}
            where = f"{name}/{container['name']}"
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 1) != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert container["resources"]["requests"].keys() >= {"cpu", "memory"}, where
            assert "memory" in container["resources"]["limits"], where


def test_the_kubemaint_image_runs_as_the_user_the_pods_ask_for():
    # runAsNonRoot checks the image's user; deploy/Dockerfile's USER must be the pods' runAsUser.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    user = re.findall(r"^USER (\d+)", dockerfile, re.M)[-1]
    for name in KUBEMAINT_DEPLOYMENTS:
        assert one(render(BASE), "Deployment", name)["spec"]["template"]["spec"]["securityContext"][
            "runAsUser"] == int(user)


def secret_references(objects: list[dict]) -> set[tuple[str, str, bool]]:
    """(secret, key, optional) for each key a pod reads from a Secret, in its environment or its volumes."""
    found = set()
    for _, spec in pod_templates(objects):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    found.add((ref["name"], ref["key"], bool(ref.get("optional"))))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                found |= {(volume["secret"]["secretName"], item["key"], bool(volume["secret"].get("optional")))
                          for item in volume["secret"]["items"]}
    return found


def test_secrets_are_referenced_by_name_and_never_shipped(rendered):
    name, objects = rendered
    assert not [o for o in objects if o["kind"] == "Secret"]
    text = yaml.safe_dump_all(objects)
    assert not re.search(r"xox[bp]-|xapp-|PRIVATE KEY|AKIA[0-9A-Z]{12}", text)
    references = secret_references(objects)
    assert {secret for secret, _, _ in references} == {SECRET}
    required = {key for _, key, optional in references if not optional}
    expected = {"slack-bot-token", "slack-app-token", "ssh-key", "known_hosts"}
    assert required == expected | ({"redis-url"} if name == "example-external-redis" else set())


def container_env(container: dict) -> dict[str, str]:
    """The environment the container starts with, the Secret's keys filled with stand-ins (optional ones absent)."""
    env = {}
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif (ref := variable["valueFrom"]["secretKeyRef"]) and not ref.get("optional"):
            env[variable["name"]] = SECRET_STAND_INS[ref["key"]]
    return env


def mounted_files(spec: dict, container: dict, objects: list[dict]) -> dict[str, str]:
    """Path in the container -> where it comes from, for the ConfigMap and Secret volumes."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    files = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = one(objects, "ConfigMap", volume["configMap"]["name"])["data"]
            if "subPath" in mount:
                files[mount["mountPath"]] = data[mount["subPath"]]
        elif "secret" in volume:
            for item in volume["secret"]["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = f"secret {item['key']}"
    return files


def test_the_config_the_pods_get_is_valid_for_kubemaint(rendered, tmp_path: Path):
    name, objects = rendered
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    for deployment in KUBEMAINT_DEPLOYMENTS:
        spec = one(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = container_env(container)
        files = mounted_files(spec, container, objects)
        config = tmp_path / f"{deployment}.yaml"
        config.write_text(files[env["KUBEMAINT_CONFIG"]])
        settings = load_settings(config, env=env)  # as `kubemaint check-config` loads it; raises on a bad key
        assert settings.kubeconfig is None  # in-cluster: the service account, limited by the ClusterRole
        assert files[str(settings.ssh.key_file)] == "secret ssh-key"
        assert files[str(settings.ssh.known_hosts)] == "secret known_hosts"
        assert settings.backups.store.type == "s3"  # pods share no disk: a bucket every worker reaches
        host = urlparse(settings.redis_url).hostname
        if name == "example-external-redis":
            assert settings.redis_url == SECRET_STAND_INS["redis-url"]
        else:
            assert host in services, f"{settings.redis_url}: no Service {host}"


def test_redis_keeps_what_it_acknowledges_on_its_own_volume():
    redis = one(render(BASE), "StatefulSet", "redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert args[0] == "redis-server"
    assert options == {"--appendonly": "yes", "--appendfsync": "always", "--save": "",
                       "--maxmemory-policy": "noeviction", "--dir": "/data"}
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert redis["spec"]["replicas"] == 1  # locks rely on one Redis's atomic scripts


def test_the_example_overlay_sets_image_replicas_and_its_own_config():
    base, example = render(BASE), render(EXAMPLE)
    for name in KUBEMAINT_DEPLOYMENTS:
        (container,) = one(example, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.com/platform/kubemaint:0.1.0"
    assert one(example, "Deployment", "kubemaint-worker")["spec"]["replicas"] == 3
    assert one(base, "Deployment", "kubemaint-worker")["spec"]["replicas"] == 2
    assert one(example, "ConfigMap")["data"] != one(base, "ConfigMap")["data"]
    assert kinds(render(EXTERNAL_REDIS)) == kinds(example) - {("StatefulSet", "redis"), ("Service", "redis")}


def test_another_namespace_moves_every_object_and_the_binding_with_it(tmp_path: Path):
    objects = render(overlay_on(EXAMPLE, tmp_path, "namespace: ops-maintenance\n"))
    assert one(objects, "Namespace")["metadata"]["name"] == "ops-maintenance"
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in cluster_scoped} == {"ops-maintenance"}
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["namespace"] == "ops-maintenance"


def shell_block(markdown: str, after: str) -> list[str]:
    """The commands of the first ```sh block after the heading `after`, continuation lines joined."""
    section = markdown.split(after, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)[1].replace("\\\n", " ")
    return [line.split(" #", 1)[0].strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def kubernetes_install(markdown: str, heading: str) -> list[str]:
    return [command for command in shell_block(markdown, heading) if command.startswith("kubectl")]


@pytest.mark.parametrize("document, heading", [(README, "### On Kubernetes"),
                                               (OPERATIONS, "## Install on Kubernetes")])
def test_the_documented_install_works_as_written(document: Path, heading: str, tmp_path: Path):
    commands = [shlex.split(c) for c in kubernetes_install(document.read_text(), heading)]
    assert [c[:3] for c in commands if "create" in c] == [["kubectl", "create", "namespace"],
                                                         ["kubectl", "-n", "kubemaint"]]
    namespace = commands[0][3]
    secret = next(c for c in commands if "secret" in c)
    apply = next(c for c in commands if c[1] == "apply")
    assert apply[2] == "-k"
    objects = render(ROOT / apply[3])  # renders, from the repository's root, as the docs say
    assert one(objects, "Namespace")["metadata"]["name"] == namespace == secret[2]
    # The Secret command, client-side: it names every key the pods need.
    for path in [a.split("=", 2)[-1] for a in secret if a.startswith("--from-file=")]:
        (tmp_path / path).write_text("stand-in\n")
    made = subprocess.run([kubectl(), *secret[1:], "--dry-run=client", "-o", "yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    keys = set(yaml.safe_load(made.stdout)["data"])
    assert yaml.safe_load(made.stdout)["metadata"]["name"] == SECRET
    assert {key for _, key, optional in secret_references(objects) if not optional} <= keys


@pytest.fixture(scope="module")
def lab():
    with LabProcess("three-workers", machines=False) as started:
        yield started


def test_the_cluster_client_connects_in_cluster_with_the_service_account(lab, tmp_path: Path):
    """No kubeconfig (as the ConfigMap has it): the client finds the API from the pod's environment and
    the service account's token and CA. In a child process: the in-cluster loader sets a global default."""
    config = yaml.safe_load(lab.kubeconfig.read_text())
    (tmp_path / "token").write_text(config["users"][0]["user"]["token"])
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
    server = urlparse(config["clusters"][0]["cluster"]["server"])
    program = (
        "import sys\n"
        "from kubernetes.config import incluster_config\n"
        "from bot.cluster import kube\n"
        "incluster_config.SERVICE_TOKEN_FILENAME, incluster_config.SERVICE_CERT_FILENAME = sys.argv[1:3]\n"
        "client = kube.connect(None)\n"
        "print(sorted(kube.read_nodes(client).nodes))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "KUBERNETES_SERVICE_HOST": server.hostname, "KUBERNETES_SERVICE_PORT": str(server.port)}
    result = subprocess.run([sys.executable, "-c", program, str(tmp_path / "token"), str(tmp_path / "ca.crt")],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "node01" in result.stdout


def test_the_api_server_accepts_the_rendered_install(lab, tmp_path: Path):
    """`kubectl apply --dry-run=server` of the example: the API server validates every object (with strict
    field validation: a misspelt field fails) and stores none. The namespace is created first, as the README
    does, because a real server refuses a dry run of objects in a namespace that does not exist yet."""
    objects = render(EXAMPLE)
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    base = [kubectl(), "--kubeconfig", str(lab.kubeconfig)]
    created = subprocess.run([*base, "create", "namespace", namespace], capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    manifests = tmp_path / "install.yaml"
    manifests.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run([*base, "apply", "--dry-run=server", "-f", str(manifests)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    named = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in objects}
    tokens = [line.split()[0].split("/", 1) for line in result.stdout.splitlines() if "(server dry run)" in line]
    printed = {f"{kind.split('.')[0]}/{name}" for kind, name in tokens}  # deployment.apps/x -> deployment/x
    assert printed == named, result.stdout
    workloads = subprocess.run([*base, "-n", namespace, "get", "deployments,statefulsets", "-o", "name"],
                               capture_output=True, text=True, timeout=60)
    assert workloads.returncode == 0 and workloads.stdout.strip() == "", "a dry run stores nothing"
