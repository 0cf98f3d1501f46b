"""The files of a fresh lab machine, as a kubeadm node has them. Pure: returns entries that
lab/machines/disk.py writes into the machine's own layer.

The machine sees the host's programs (its root is an overlay over /) and these files on top:
users and sudo, its sshd, kubeadm's layout (/etc/kubernetes, /var/lib/kubelet, /var/lib/etcd,
the apt source naming the repo's minor), the lab's programs in place of the real ones and
their state under /var/lib/kubemaint-lab.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from lab.machines import catalogue, manifests, pki
from lab.machines.keys import KeyPair
from lab.machines.programs import PROGRAMS, repos, state
from lab.machines.spec import MachineSpec

USER = "kubemaint"
UID = 1000
LAB_DIR = "/usr/lib/kubemaint-lab"
INIT = f"{LAB_DIR}/init"
SESSION = f"{LAB_DIR}/session"
REAL_KUBECTL = f"{LAB_DIR}/kubectl"  # the host's kubectl is bound here at boot (lab/machines/programs/kube.py)
SYSTEM_ETCDCTL = "/usr/bin/etcdctl"  # Debian's etcd-client, on the host
REAL_ETCDCTL = f"{LAB_DIR}/etcdctl"  # ... bound here at boot; the machine's /usr/bin/etcdctl is ETCDCTL_WRAPPER
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
# Directories whose host contents the machine must not see (overlayfs "opaque" directories):
# another node's certificates, the host's sudoers, users and temporary files (the lab's own
# work directories are under the host's /tmp).
OPAQUE = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/apt/sources.list.d", "/etc/apt/keyrings",
          "/etc/sudoers.d", "/home", "/tmp", "/var/tmp", "/var/lib/kubemaint-lab", LAB_DIR,
          "/etc/systemd/system/kubelet.service.d")


@dataclass(frozen=True)
class Entry:
    path: str
    content: bytes | None = None  # None: a directory
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    opaque: bool = False


@dataclass(frozen=True)
class World:
    """What every machine of one lab shares."""

    python: str  # the interpreter that runs the machine's programs
    source: str  # the directory holding the `lab` package
    api_server: str  # the lab API's URL
    token: str
    ca_pem: bytes
    cluster: pki.ClusterAuthorities
    login_key: KeyPair
    host_passwd: str
    host_group: str
    hidden: tuple[str, ...] = ()  # host directories no machine may see into (where the machines' files are)
    time_scale: float = 1.0  # the lab's --time-scale: the machines' programs scale their timeouts by it


INIT_SCRIPT = r"""#!/bin/sh
# pid 1 of a kubemaint lab machine. The lab drives it with one word per line on stdin and
# reads its answers on stdout. When the lab goes away, stdin closes, this script ends and
# the kernel ends every process of the machine with it (it is pid 1 of the machine's pid
# namespace): no machine outlives its lab.
mkdir -p /run/sshd /run/kubemaint-lab /run/lock
chmod 755 /run/sshd
sshd=
start_sshd() {
  if [ -z "$sshd" ]; then
    /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config </dev/null >&2 &
    sshd=$!
  fi
  echo "sshd started"
}
stop_sshd() {
  if [ -n "$sshd" ]; then
    kill "$sshd"
    wait "$sshd"
    sshd=
  fi
  echo "sshd stopped"
}
# The containers of static pods the kubelet runs here (lab/machines/pods.py writes their scripts).
start_pod() {
  "/run/kubemaint-lab/pods/$1/run" </dev/null &
  echo $! > "/run/kubemaint-lab/pods/$1/pid"
  echo "pod $1 started"
}
stop_pod() {
  if [ -r "/run/kubemaint-lab/pods/$1/pid" ]; then
    pid=$(cat "/run/kubemaint-lab/pods/$1/pid")
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "/run/kubemaint-lab/pods/$1/pid"
  fi
  echo "pod $1 stopped"
}
echo "booted"
while read -r command; do
  case "$command" in
    sshd-start) start_sshd ;;
    sshd-stop) stop_sshd ;;
    "pod-start "*) start_pod "${command#pod-start }" ;;
    "pod-stop "*) stop_pod "${command#pod-stop }" ;;
    *) echo "unknown command: $command" ;;
  esac
done
"""

SESSION_SCRIPT = f"""#!/bin/sh
# Every SSH session of this lab machine starts here (sshd_config: ForceCommand). It waits out
# the lab's command-latency fault, then runs what the client asked for, as sshd would have.
if [ -r {state.SESSION_DELAY} ]; then
  read -r delay < {state.SESSION_DELAY} && [ -n "$delay" ] && sleep "$delay"
fi
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
  {{ printf '%s %s %s\\n' "$(date +%s)" "$(id -un)" "$SSH_ORIGINAL_COMMAND" >> {state.SESSION_LOG}; }} 2>/dev/null
  exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
fi
exec "$SHELL" -l
"""

KUBELET_UNIT = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/home/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROP_IN = """# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
"""


ETCDCTL_WRAPPER = r"""#!/bin/sh
# etcdctl on this lab machine is Debian's (etcd-client, bound at {real}). The machines share the
# host's network, so this machine's etcd listens on its own address instead of 127.0.0.1
# (lab/machines/pods.py): endpoints on 127.0.0.1 or localhost are sent there.
own={address}
to_own() {{
  printf '%s' "$1" | sed -e "s#\[127\.0\.0\.1\]#$own#g" -e "s#127\.0\.0\.1:#$own:#g" -e "s#localhost:#$own:#g"
}}
endpoints=
for arg; do
  shift
  case "$arg" in
    --endpoints=*) arg="--endpoints=$(to_own "${{arg#--endpoints=}}")"; endpoints=given ;;
    --endpoints) endpoints=next ;;
    *) if [ "$endpoints" = next ]; then arg=$(to_own "$arg"); endpoints=given; fi ;;
  esac
  set -- "$@" "$arg"
done
if [ -n "$ETCDCTL_ENDPOINTS" ]; then
  ETCDCTL_ENDPOINTS=$(to_own "$ETCDCTL_ENDPOINTS"); export ETCDCTL_ENDPOINTS
elif [ -z "$endpoints" ]; then
  ETCDCTL_ENDPOINTS="$own:2379"; export ETCDCTL_ENDPOINTS  # etcdctl's default is 127.0.0.1:2379
fi
exec {real} "$@"
"""


def sshd_config(spec: MachineSpec, port: int) -> str:
    return f"""# The sshd of kubemaint lab machine {spec.name} (lab/machines/layout.py)
ListenAddress {spec.address}:{port}
HostKey {HOST_KEY}
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 100:30:300
MaxSessions 100
AcceptEnv LANG LC_*
ForceCommand {SESSION}
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def kubeconfig(world: World, user: str) -> str:
    import base64

    ca = base64.b64encode(world.ca_pem).decode()
    return (f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n"
            f"    server: {world.api_server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n"
            f"    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\n"
            f"preferences: {{}}\nusers:\n- name: {user}\n  user:\n    token: {world.token}\n")


def wrapper(name: str, world: World) -> str:
    return (f"#!/bin/sh\n# {name} on this lab machine is the lab's (lab/machines/programs/).\n"
            f"export PYTHONPATH={shlex.quote(world.source)} PYTHONDONTWRITEBYTECODE=1\n"
            f"exec {shlex.quote(world.python)} -m lab.machines.programs {name} \"$@\"\n")


def users(world: World) -> list[Entry]:
    """The host's system accounts (sshd's privilege separation user among them) and kubemaint."""
    def system_lines(text: str, id_field: int) -> list[str]:
        kept = []
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) > id_field and fields[id_field].isdigit() and (
                    int(fields[id_field]) < 1000 or int(fields[id_field]) == 65534) and fields[0] != USER:
                kept.append(line)
        return kept

    passwd = [*system_lines(world.host_passwd, 2), f"{USER}:x:{UID}:{UID}:kubemaint:/home/{USER}:/bin/bash"]
    group = [*system_lines(world.host_group, 2), f"{USER}:x:{UID}:"]
    shadow = [f"{line.split(':')[0]}:*:19000:0:99999:7:::" for line in passwd]
    return [
        Entry("/etc/passwd", ("\n".join(passwd) + "\n").encode()),
        Entry("/etc/group", ("\n".join(group) + "\n").encode()),
        Entry("/etc/shadow", ("\n".join(shadow) + "\n").encode(), 0o640, gid=_shadow_gid(world.host_group)),
        Entry("/etc/sudoers.d", None, 0o755, opaque=True),
        Entry(f"/etc/sudoers.d/{USER}", f"{USER} ALL=(ALL) NOPASSWD:ALL\n".encode(), 0o440),
        Entry("/home", None, 0o755, opaque=True),
        Entry(f"/home/{USER}", None, 0o755, UID, UID),
        Entry(f"/home/{USER}/.ssh", None, 0o700, UID, UID),
        Entry(f"/home/{USER}/.ssh/authorized_keys", (world.login_key.public + "\n").encode(), 0o600, UID, UID),
    ]


def _shadow_gid(group_text: str) -> int:
    for line in group_text.splitlines():
        fields = line.split(":")
        if fields[0] == "shadow" and len(fields) > 2 and fields[2].isdigit():
            return int(fields[2])
    return 0


def kubernetes(spec: MachineSpec, world: World) -> list[Entry]:
    entries = [Entry("/etc/kubernetes", None, 0o755, opaque=True),
               Entry("/etc/kubernetes/manifests", None, 0o755),
               Entry("/etc/kubernetes/pki", None, 0o755),
               Entry("/etc/kubernetes/kubelet.conf", kubeconfig(world, f"system:node:{spec.name}").encode(), 0o600),
               Entry("/var/lib/kubelet", None, 0o700, opaque=True),
               Entry("/var/lib/kubelet/config.yaml", KUBELET_CONFIG.encode()),
               Entry("/var/lib/kubelet/kubeadm-flags.env",
                     f'KUBELET_KUBEADM_ARGS="--network-plugin=cni --pod-infra-container-image='
                     f'{manifests.registry(spec.version)}/pause:3.2"\n'.encode()),
               Entry("/etc/systemd/system/kubelet.service.d", None, 0o755, opaque=True),
               Entry("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", KUBEADM_DROP_IN.encode()),
               Entry("/usr/lib/systemd/system/kubelet.service", KUBELET_UNIT.encode()),
               Entry("/var/log/pods", None, 0o755)]  # the kubelet's pod logs (lab/machines/pods.py)
    if spec.control_plane:
        files = pki.control_plane_files(world.cluster, spec.name, spec.address)
        for name in ("admin", "controller-manager", "scheduler"):
            user = {"admin": "kubernetes-admin", "controller-manager": "system:kube-controller-manager",
                    "scheduler": "system:kube-scheduler"}[name]
            entries.append(Entry(f"/etc/kubernetes/{name}.conf", kubeconfig(world, user).encode(), 0o600))
        for file_name, manifest in manifests.static_pod_manifests(spec.name, spec.address, spec.version).items():
            entries.append(Entry(f"{manifests.MANIFESTS_DIR}/{file_name}", manifests.render(manifest).encode(), 0o600))
        entries += [Entry("/var/lib/etcd", None, 0o700, opaque=True), Entry("/var/lib/etcd/member", None, 0o700),
                    Entry("/var/lib/etcd/member/snap", None, 0o700), Entry("/var/lib/etcd/member/wal", None, 0o700)]
    else:
        files = pki.worker_files(world.cluster)
    if spec.control_plane:
        entries.append(Entry("/etc/kubernetes/pki/etcd", None, 0o755))
    entries += [Entry(f"/etc/kubernetes/pki/{name}", content, 0o600 if name.endswith(".key") else 0o644)
                for name, content in sorted(files.items())]
    return entries


def packages(spec: MachineSpec) -> dict:
    """packages.json of a fresh machine: its image's packages, its kernel, the Kubernetes packages."""
    installed = {name: {"version": version, "held": False, "origin": "os"} for name, version in spec.image.base}
    installed[spec.image.kernel_package] = {"version": catalogue.kernel_package_version(spec.kernel), "held": False,
                                            "origin": "os", "kernel": spec.kernel}
    for name in repos.KUBE_BINARIES:
        installed[name] = {"version": spec.repo.package_version(spec.version.lstrip("v")), "held": name in spec.holds,
                           "origin": "kubernetes"}
    minor = f"1.{spec.version.split('.')[1]}"
    for name, version in repos.EXTRAS[spec.repo.kind].items():
        installed[name] = {"version": version.format(minor=minor), "held": name in spec.holds, "origin": "kubernetes"}
    return {"packages": installed, "kernels": [spec.kernel]}


def machine_state(spec: MachineSpec, time_scale: float = 1.0) -> list[Entry]:
    archive = {"kubernetes": spec.latest_patch,
               "os": {"mirror": spec.image.mirror, "codename": spec.image.codename, "updates": spec.updates}}
    # As if `apt-get update` had just run: what the archive offers is known.
    lists = {"os": archive["os"], "kubernetes": {"repo": {"kind": spec.repo.kind, "minor": spec.repo.minor},
                                                  "packages": repos.index(archive, spec.repo)}}
    services = {"kubelet": {"enabled": True, "active": False},
                "containerd": {"enabled": True, "active": False},
                "ssh": {"enabled": True, "active": False}}

    def as_json(data: object) -> bytes:
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    return [Entry(state.STATE_DIR, None, 0o755, opaque=True),
            Entry(state.PACKAGES, as_json(packages(spec))), Entry(state.ARCHIVE, as_json(archive)),
            Entry(state.LISTS, as_json(lists)), Entry(state.SERVICES, as_json(services)),
            Entry(state.LAB_SETTINGS, as_json({"timeScale": time_scale}))]


def system(spec: MachineSpec, world: World, host_key: KeyPair, port: int) -> list[Entry]:
    image = spec.image
    release = image.os_release().encode()
    entries = [
        Entry("/etc/hostname", f"{spec.name}\n".encode()),
        Entry("/etc/hosts", f"127.0.0.1 localhost\n{spec.address} {spec.name}\n".encode()),
        Entry("/etc/os-release", release), Entry("/usr/lib/os-release", release),
        Entry("/tmp", None, 0o1777, opaque=True), Entry("/var/tmp", None, 0o1777, opaque=True),
        Entry("/etc/ssh/sshd_config", sshd_config(spec, port).encode()),
        Entry(HOST_KEY, host_key.private, 0o600), Entry(f"{HOST_KEY}.pub", (host_key.public + "\n").encode()),
        Entry("/etc/apt/sources.list.d", None, 0o755, opaque=True),
        Entry(state.KUBERNETES_LIST, (spec.repo.source_line() + "\n").encode()),
        Entry("/etc/apt/keyrings", None, 0o755, opaque=True),
        Entry(repos.LEGACY_KEYRING if spec.repo.kind == "legacy" else repos.PKGS_KEYRING, b"lab keyring\n"),
        Entry(LAB_DIR, None, 0o755, opaque=True),
        Entry(INIT, INIT_SCRIPT.encode(), 0o755), Entry(SESSION, SESSION_SCRIPT.encode(), 0o755),
        Entry(state.SESSION_LOG, b"", 0o622),
        Entry(REAL_KUBECTL, b"", 0o644),
        Entry(REAL_ETCDCTL, b"", 0o644),
        Entry(SYSTEM_ETCDCTL, ETCDCTL_WRAPPER.format(real=REAL_ETCDCTL, address=spec.address).encode(), 0o755),
    ]
    entries += [Entry(path, wrapper(name, world).encode(), 0o755) for name, (_, _, path) in PROGRAMS.items()]
    entries += [Entry(path, None, 0o700, opaque=True) for path in world.hidden]
    return entries


def fresh_machine(spec: MachineSpec, world: World, host_key: KeyPair, port: int) -> list[Entry]:
    """Every file a fresh machine has on top of the host's, parents before children."""
    return [*system(spec, world, host_key, port), *users(world), *kubernetes(spec, world),
            *machine_state(spec, world.time_scale)]
