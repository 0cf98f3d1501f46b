"""What kubectl does against the lab where it used to differ from a real cluster: typed `create`
commands (kubectl 1.33 sends them as protobuf), `apply -f`/`create -f` validated by the server
(OpenAPI v3, fieldValidation), finalizers, namespace deletion and the kinds an install manifest
holds. The expected lines are what kubectl prints against a real API server."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from lab.testing import LabProcess, wait_until

pytestmark = pytest.mark.runs_long(30)

INSTALL = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: kubemaint, namespace: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubemaint}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubemaint}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubemaint}
subjects:
- {kind: ServiceAccount, name: kubemaint, namespace: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: kubemaint, namespace: ops}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: kubemaint, namespace: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: kubemaint}
subjects:
- {kind: ServiceAccount, name: kubemaint, namespace: ops}
---
apiVersion: v1
kind: Secret
metadata: {name: kubemaint, namespace: ops}
stringData: {token: s3cret}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kubemaint, namespace: ops}
data: {LOG_LEVEL: info}
---
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: ops}
spec:
  selector: {app: redis}
  ports:
  - {port: 6379, targetPort: 6379}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: redis, namespace: ops}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, namespace: ops}
spec:
  serviceName: redis
  replicas: 1
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
      - {name: redis, image: "redis:7"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: kubemaint, namespace: ops}
spec:
  replicas: 1
  selector: {matchLabels: {app: kubemaint}}
  template:
    metadata: {labels: {app: kubemaint}}
    spec:
      serviceAccountName: kubemaint
      containers:
      - name: bot
        image: kubemaint:dev
        env:
        - {name: REDIS_URL, value: "redis://redis:6379"}
"""
INSTALL_LINES = [
    "serviceaccount/kubemaint {}",
    "clusterrole.rbac.authorization.k8s.io/kubemaint {}",
    "clusterrolebinding.rbac.authorization.k8s.io/kubemaint {}",
    "role.rbac.authorization.k8s.io/kubemaint {}",
    "rolebinding.rbac.authorization.k8s.io/kubemaint {}",
    "secret/kubemaint {}",
    "configmap/kubemaint {}",
    "service/redis {}",
    "persistentvolumeclaim/redis {}",
    "statefulset.apps/redis {}",
    "deployment.apps/kubemaint {}",
]
TYPO = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo}
spec:
  replica: 2
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers:
      - {name: c, imagee: nginx}
"""
HELD = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: held
  finalizers: [example.com/hold]
data: {a: b}
"""


def ok(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def manifest(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_typed_create_commands(kubectl, workers_lab: LabProcess):
    # kubectl 1.33 sends these bodies as protobuf; earlier minors as JSON.
    assert ok(kubectl.run(workers_lab, "create", "namespace", "ops")) == ["namespace/ops created"]
    commands = {
        ("create", "configmap", "settings", "--from-literal=LOG_LEVEL=debug"): "configmap/settings created",
        ("create", "secret", "generic", "token", "--from-literal=token=s3cret"): "secret/token created",
        ("create", "serviceaccount", "bot"): "serviceaccount/bot created",
        ("create", "deployment", "web", "--image=nginx:1.25", "--replicas=0", "--port=80"):
            "deployment.apps/web created",
        ("run", "probe", "--image=busybox:1.36", "--env=MODE=once"): "pod/probe created",
    }
    for args, printed in commands.items():
        assert ok(kubectl.run(workers_lab, "-n", "ops", *args)) == [printed]
    assert workers_lab.get("/api/v1/namespaces/ops")["status"]["phase"] == "Active"
    assert workers_lab.get("/api/v1/namespaces/ops/configmaps/settings")["data"] == {"LOG_LEVEL": "debug"}
    secret = workers_lab.get("/api/v1/namespaces/ops/secrets/token")
    assert (secret["type"], base64.b64decode(secret["data"]["token"])) == ("Opaque", b"s3cret")
    web = workers_lab.get("/apis/apps/v1/namespaces/ops/deployments/web")
    assert web["spec"]["replicas"] == 0  # an explicit zero survives the protobuf decoding
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["ports"]) == ("nginx:1.25", [{"containerPort": 80}])
    probe = workers_lab.get("/api/v1/namespaces/ops/pods/probe")["spec"]["containers"][0]
    assert (probe["image"], probe["env"]) == ("busybox:1.36", [{"name": "MODE", "value": "once"}])
    assert ok(kubectl.run(workers_lab, "get", "secret,serviceaccount", "-n", "ops", "-o", "name")) == [
        "secret/token", "serviceaccount/bot"]


def test_create_dry_run_server_persists_nothing(kubectl, workers_lab: LabProcess):
    result = kubectl.run(workers_lab, "create", "configmap", "x", "--from-literal=a=b", "--dry-run=server")
    assert ok(result) == ["configmap/x created (server dry run)"]
    missing = kubectl.run(workers_lab, "get", "configmap", "x")
    assert missing.stderr.strip() == 'Error from server (NotFound): configmaps "x" not found'


def test_apply_validates_and_installs_every_kind(kubectl, workers_lab: LabProcess, tmp_path: Path):
    path = manifest(tmp_path, "install.yaml", INSTALL)
    assert ok(kubectl.run(workers_lab, "create", "namespace", "ops")) == ["namespace/ops created"]
    # No --validate=false: kubectl reads the OpenAPI v3 documents and leaves validation to the server.
    dry = ok(kubectl.run(workers_lab, "apply", "-f", path, "--dry-run=server"))
    assert dry == [line.format("created (server dry run)") for line in INSTALL_LINES]
    assert kubectl.run(workers_lab, "get", "deployment", "kubemaint", "-n", "ops").returncode == 1
    assert ok(kubectl.run(workers_lab, "apply", "-f", path)) == [line.format("created") for line in INSTALL_LINES]
    again = ok(kubectl.run(workers_lab, "apply", "-f", path))
    # The Secret is "configured" again, as on a real cluster: its stringData is never stored, so
    # the three-way patch always puts it back.
    assert again == [line.format("configured" if line.startswith("secret/") else "unchanged")
                     for line in INSTALL_LINES]
    secret = workers_lab.get("/api/v1/namespaces/ops/secrets/kubemaint")
    assert "stringData" not in secret and base64.b64decode(secret["data"]["token"]) == b"s3cret"
    binding = workers_lab.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubemaint")
    assert binding["roleRef"]["name"] == "kubemaint"
    wait_until(lambda: workers_lab.get("/apis/apps/v1/namespaces/ops/deployments/kubemaint")
               .get("status", {}).get("readyReplicas") == 1, 30, "the installed deployment ready")


def test_unknown_field_is_refused_like_a_real_server(kubectl, workers_lab: LabProcess, tmp_path: Path):
    path = manifest(tmp_path, "typo.yaml", TYPO)
    refused = (f'Error from server (BadRequest): error when creating "{path}": Deployment in version "v1" '
               'cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica", '
               'unknown field "spec.template.spec.containers[0].imagee"')
    for verb in ("apply", "create"):
        result = kubectl.run(workers_lab, verb, "-f", path)
        assert (result.returncode, result.stderr.strip()) == (1, refused)
    assert kubectl.run(workers_lab, "get", "deployment", "typo").returncode == 1  # nothing created
    fixed = TYPO.replace("replica:", "replicas:").replace("imagee", "image")
    warned = kubectl.run(workers_lab, "apply", "-f", manifest(tmp_path, "warn.yaml", fixed + "  paused2: true\n"),
                         "--validate=warn")
    assert ok(warned) == ["deployment.apps/typo created"]
    assert warned.stderr.strip() == 'Warning: unknown field "spec.paused2"'
    assert "paused2" not in workers_lab.get("/apis/apps/v1/namespaces/default/deployments/typo")["spec"]


def test_finalizer_keeps_a_deleted_object_until_removed(kubectl, workers_lab: LabProcess, tmp_path: Path):
    assert ok(kubectl.run(workers_lab, "apply", "-f", manifest(tmp_path, "held.yaml", HELD))) == [
        "configmap/held created"]
    assert ok(kubectl.run(workers_lab, "delete", "configmap", "held", "--wait=false")) == [
        'configmap "held" deleted']
    held = workers_lab.get("/api/v1/namespaces/default/configmaps/held")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["deletionGracePeriodSeconds"] == 0
    assert ok(kubectl.run(workers_lab, "get", "configmap", "held", "-o", "name")) == ["configmap/held"]
    patched = kubectl.run(workers_lab, "patch", "configmap", "held", "--type=merge",
                          "-p", '{"metadata":{"finalizers":null}}')
    assert ok(patched) == ["configmap/held patched"]
    gone = kubectl.run(workers_lab, "get", "configmap", "held")
    assert gone.stderr.strip() == 'Error from server (NotFound): configmaps "held" not found'


def test_deleted_namespace_terminates_and_empties(kubectl, workers_lab: LabProcess, tmp_path: Path):
    assert ok(kubectl.run(workers_lab, "create", "namespace", "doomed")) == ["namespace/doomed created"]
    ok(kubectl.run(workers_lab, "-n", "doomed", "create", "configmap", "plain"))
    ok(kubectl.run(workers_lab, "-n", "doomed", "apply", "-f", manifest(tmp_path, "held.yaml", HELD)))
    assert ok(kubectl.run(workers_lab, "delete", "namespace", "doomed", "--wait=false")) == [
        'namespace "doomed" deleted']
    row = ok(kubectl.run(workers_lab, "get", "namespace", "doomed", "--no-headers"))[0].split()
    assert row[:2] == ["doomed", "Terminating"]
    assert ok(kubectl.run(workers_lab, "-n", "doomed", "get", "configmaps", "-o", "name")) == ["configmap/held"]
    refused = kubectl.run(workers_lab, "-n", "doomed", "create", "configmap", "late")
    assert refused.stderr.strip() == (
        'error: failed to create configmap: configmaps "late" is forbidden: unable to create new content in '
        "namespace doomed because it is being terminated")
    ok(kubectl.run(workers_lab, "-n", "doomed", "patch", "configmap", "held", "--type=merge",
                   "-p", '{"metadata":{"finalizers":null}}'))
    gone = kubectl.run(workers_lab, "get", "namespace", "doomed")
    assert gone.stderr.strip() == 'Error from server (NotFound): namespaces "doomed" not found'


def test_deleting_a_namespace_with_pods_waits_for_them(kubectl, workers_lab: LabProcess):
    assert workers_lab.pods("shop")
    assert ok(kubectl.run(workers_lab, "delete", "namespace", "shop")) == ['namespace "shop" deleted']
    assert workers_lab.pods("shop") == []
    assert kubectl.run(workers_lab, "get", "namespace", "shop").returncode == 1
