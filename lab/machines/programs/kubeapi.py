"""The Kubernetes API as a machine's own programs reach it: through a kubeconfig on the machine
(/etc/kubernetes/admin.conf on control planes, kubelet.conf everywhere), as kubeadm does.
Standard library only: the kubeconfigs the lab writes (lab/machines/layout.py) have one
cluster, its CA inline and a bearer token, which a few patterns read without a YAML parser.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.request

from lab.machines.programs.system import System

ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
TIMEOUT = 10.0


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NoKubeconfig(Exception):
    pass


def _field(text: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}:\s*(\S+)\s*$", text, re.MULTILINE)
    return match[1].strip("'\"") if match else ""


class Kube:
    def __init__(self, server: str, token: str, ca_pem: str) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()

    @classmethod
    def from_kubeconfig(cls, system: System, path: str) -> Kube:
        try:
            text = system.read_text(path)
        except PermissionError as exc:
            raise NoKubeconfig(f"open {path}: permission denied") from exc
        if text is None:
            raise NoKubeconfig(f"open {path}: no such file or directory")
        ca = _field(text, "certificate-authority-data")
        return cls(_field(text, "server"), _field(text, "token"), base64.b64decode(ca).decode() if ca else "")

    def request(self, method: str, path: str, body: object = None, content_type: str = "application/json") -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": content_type} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("message") or raw.decode()
            except ValueError:
                message = raw.decode(errors="replace")
            raise ApiError(exc.code, message) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, f"Get \"{self.server}{path}\": {reason}") from exc
        return json.loads(raw) if raw else {}

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def get_or_none(self, path: str) -> dict | None:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def put(self, path: str, body: dict) -> dict:
        return self.request("PUT", path, body)

    def create(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body)
