"""kubelet, kubeadm and kubectl as installed by the Kubernetes packages: they report the
version of the package on disk (the running kubelet's version is the service's, see systemctl).

kubeadm's subcommands are a table, so `kubeadm upgrade` is one more entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from lab.machines.programs import state
from lab.machines.programs.system import System

# The machine's real kubectl (the host's, bound here at boot) answers everything but
# `version --client`, e.g. `kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes`.
REAL_KUBECTL = "/usr/lib/kubemaint-lab/kubectl"
GIT_COMMIT = "e19964183377d0ec2052d1f1fa930c4d7575bd50"
DEPRECATED_LONG_FORM = ("WARNING: This version information is deprecated and will be replaced with the output from "
                        "kubectl version --short.  Use --output=yaml|json to get the full version.")


def kustomize(minor: int) -> str:
    return "v5.0.4-0.20230601165947-6ce0bf390ce3" if minor >= 28 else "v5.0.1" if minor == 27 else "v4.5.7"


def _installed(system: System, package: str) -> str | None:
    version = state.installed_version(system, package)
    if version is None:
        system.err(f"-bash: {package}: command not found")
    return None if version is None else state.kube_version(version)


def version_info(version: str) -> dict:
    major, minor, _ = version.lstrip("v").split(".", 2)
    return {"major": major, "minor": minor, "gitVersion": version, "gitCommit": GIT_COMMIT,
            "gitTreeState": "clean", "buildDate": "2020-08-26T14:28:32Z", "goVersion": "go1.15",
            "compiler": "gc", "platform": "linux/amd64"}


def go_struct(info: dict) -> str:
    """Go's %#v of version.Info, as `kubeadm version` and old `kubectl version` print it."""
    fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
    return "version.Info{" + fields + "}"


def _output_format(args: list[str]) -> str:
    for index, arg in enumerate(args):
        if arg in ("-o", "--output") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--output=") or arg.startswith("-o="):
            return arg.split("=", 1)[1]
        if arg.startswith("-o") and len(arg) > 2:
            return arg[2:]
    return ""


# -- kubelet ------------------------------------------------------------------------------------


def kubelet(system: System, args: list[str]) -> int:
    version = _installed(system, "kubelet")
    if version is None:
        return 127
    if args and args[0] in ("--version", "--version=true"):
        system.out(f"Kubernetes {version}")
        return 0
    system.err("kubelet: on this machine the kubelet runs as kubelet.service: use systemctl start|restart kubelet")
    return 1


# -- kubeadm ------------------------------------------------------------------------------------


def kubeadm_version(system: System, version: str, args: list[str]) -> int:
    info = version_info(version)
    output = _output_format(args)
    if output == "short":
        system.out(version)
    elif output == "json":
        system.out(json.dumps({"clientVersion": info}, indent=2))
    elif output == "yaml":
        system.out("clientVersion:\n" + "".join(f"  {k}: {v}\n" for k, v in info.items()), end="")
    elif output:
        system.err(f'error: invalid output format: {output}\nTo see the stack trace of this error execute with '
                   f'--v=5 or higher')
        return 1
    else:
        system.out(f"kubeadm version: &{go_struct(info)}")
    return 0


def kubeadm_upgrade(system: System, version: str, args: list[str]) -> int:
    from lab.machines.programs.kubeadm_upgrade import kubeadm_upgrade as upgrade

    return upgrade(system, version, args)


KUBEADM_COMMANDS: dict[str, Callable[[System, str, list[str]], int]] = {"version": kubeadm_version,
                                                                         "upgrade": kubeadm_upgrade}
# Real kubeadm commands the lab does not simulate (yet): named, so they are not "unknown".
KUBEADM_UNSIMULATED = ("init", "join", "reset", "token", "certs", "config", "kubeconfig", "alpha", "completion")


def kubeadm(system: System, args: list[str]) -> int:
    version = _installed(system, "kubeadm")
    if version is None:
        return 127
    words = [a for a in args if not a.startswith("-")]
    command = words[0] if words else ""
    if command in KUBEADM_COMMANDS:
        return KUBEADM_COMMANDS[command](system, version, args[args.index(command) + 1:])
    if not command:
        system.out("Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  upgrade     Upgrade your cluster smoothly "
                   "to a newer version with this command\n  version     Print the version of kubeadm")
        return 0
    if command in KUBEADM_UNSIMULATED:
        system.err(f"kubeadm {command}: not simulated by the lab's machines")
        return 1
    system.err(f'unknown command "{command}" for "kubeadm"\nTo see the stack trace of this error execute with '
               f'--v=5 or higher')
    return 1


# -- kubectl ------------------------------------------------------------------------------------


def kubectl(system: System, args: list[str]) -> int:
    version = _installed(system, "kubectl")
    if version is None:
        return 127
    words = [a for a in args if not a.startswith("-")]
    if words[:1] == ["version"] and ("--client" in args or "--client=true" in args):
        return kubectl_client_version(system, version, args)
    if os.access(system.path(REAL_KUBECTL), os.X_OK):
        os.execv(system.path(REAL_KUBECTL), ["kubectl", *args])
    system.err("The connection to the server localhost:8080 was refused - did you specify the right host or port?")
    return 1


def kubectl_client_version(system: System, version: str, args: list[str]) -> int:
    """`kubectl version --client`: Go's long form before 1.28 (deprecated, with a warning, from
    1.24), the short form since; kustomize's version from 1.24."""
    info = version_info(version)
    minor = int(info["minor"])
    output = _output_format(args)
    if output == "json":
        body: dict = {"clientVersion": info}
        if minor >= 24:
            body["kustomizeVersion"] = kustomize(minor)
        system.out(json.dumps(body, indent=2))
        return 0
    if output == "yaml":
        system.out("clientVersion:\n" + "".join(f"  {k}: {v}\n" for k, v in info.items()), end="")
        return 0
    if "--short" in args or minor >= 28:
        system.out(f"Client Version: {version}")
    else:
        if minor >= 24:
            system.err(DEPRECATED_LONG_FORM)
        system.out(f"Client Version: {go_struct(info)}")
    if minor >= 24:
        system.out(f"Kustomize Version: {kustomize(minor)}")
    return 0
