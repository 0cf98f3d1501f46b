"""deploy/kubernetes as `kubectl kustomize` renders it: what `kubectl apply -k` would send."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
BASE = KUSTOMIZE / "base"
EXAMPLE = KUSTOMIZE / "overlays" / "example"
EXTERNAL_REDIS = KUSTOMIZE / "overlays" / "example-external-redis"
SECRET = "kubemaint"  # the Secret the user creates (docs/operations.md); never in the manifests


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError("kubectl is not on PATH: the deploy tests render the manifests with `kubectl kustomize`")
    return found


def render(folder: Path) -> list[dict]:
    """The objects of `kubectl kustomize FOLDER`."""
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {folder}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def overlay_on(folder: Path, tmp: Path, extra: str) -> Path:
    """A throwaway overlay in `tmp` on top of `folder` (kustomize wants relative paths), with `extra` YAML."""
    relative = os.path.relpath(folder, tmp)
    (tmp / "kustomization.yaml").write_text(f"resources: [{relative}]\n{extra}")
    return tmp


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def cluster_role_rules(folder: Path = BASE) -> list[dict]:
    return one(render(folder), "ClusterRole")["rules"]
