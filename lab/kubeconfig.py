"""The kubeconfig the lab hands to kubectl and to kubemaint."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import yaml


def render(server: str, ca_pem: bytes, token: str, name: str = "lab") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": server,
                "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            },
        }],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [{
            "name": name,
            "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"},
        }],
        "current-context": name,
        "preferences": {},
    }


def write_atomically(path: Path, config: dict) -> None:
    """Readers wait for the file to appear, so it must never be seen half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        yaml.safe_dump(config, out, sort_keys=False)
    os.chmod(temp, 0o600)
    os.replace(temp, path)
