"""A private OpenSSH server for the SSH layer's tests, and the users and keys they log in with.

Independent of the lab's machines: each test module starts its own sshd on a loopback address of
its own (127.X.Y.Z, a free port), with a temporary host key, its own authorized_keys files, no PAM
and no pid file. sshd insists on /run/sshd, so it runs in a private mount namespace with a tmpfs on
/run: the machine's /run is left alone.

    with PrivateSshd() as sshd:
        sshd.authorize("root", client_key.public)
        sshd.known_hosts_line()          # for a known_hosts file
        sshd.restart(); sshd.stop()   # leaving: its directory removed
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lab.testing import child_pids

SSHD = "/usr/sbin/sshd"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll `predicate` until it returns something true; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def private_loopback_address() -> str:
    """A loopback address unlikely to be used by anything else (the lab uses 127.0.x.y)."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public_text: str

    @property
    def fingerprint(self) -> str:
        return ssh_keygen_fingerprint(Path(f"{self.private}.pub"))


def make_key(directory: Path, name: str, passphrase: str = "", key_type: str = "ed25519") -> KeyPair:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", name, "-f", str(path)],
                   check=True, timeout=30)
    return KeyPair(path, Path(f"{path}.pub").read_text().strip())


def ssh_keygen_fingerprint(public_key: Path) -> str:
    """The fingerprint as `ssh-keygen -lf` prints it (its second field)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return out.split()[1]


class PrivateSshd:
    def __init__(self, *, address: str | None = None, port: int | None = None, extra_config: str = "") -> None:
        # Its own directory, readable by all: sshd reads a user's authorized_keys as that user, and pytest's
        # temporary directories are root's alone. Nothing secret is kept here (the host key is a test's).
        self.workdir = Path(tempfile.mkdtemp(prefix="kubemaint-sshd-"))
        self.workdir.chmod(0o755)
        self.address = address or private_loopback_address()
        self.port = port or free_port(self.address)
        self.extra_config = extra_config
        self.host_key = self.workdir / "ssh_host_ed25519_key"
        self.config = self.workdir / "sshd_config"
        self.log = self.workdir / "sshd.log"
        self.process: subprocess.Popen | None = None
        self.new_host_key()

    def new_host_key(self) -> None:
        """A fresh host key: what a reinstalled node (or an impostor) offers."""
        for path in (self.host_key, Path(f"{self.host_key}.pub")):
            path.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "private-sshd", "-f", str(self.host_key)],
                       check=True, timeout=30)

    @property
    def host_key_fingerprint(self) -> str:
        return ssh_keygen_fingerprint(Path(f"{self.host_key}.pub"))

    def known_hosts_line(self) -> str:
        key_type, blob = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[{self.address}]:{self.port} {key_type} {blob}\n"

    def authorize(self, user: str, public_key: str) -> None:
        keys = self.workdir / f"authorized_keys_{user}"
        with keys.open("a") as out:
            out.write(public_key.strip() + "\n")
        keys.chmod(0o644)

    def start(self) -> PrivateSshd:
        self.config.write_text(
            f"ListenAddress {self.address}:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.workdir}/authorized_keys_%u\n"
            "UsePAM no\nPidFile none\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
            # The key files live under /tmp, which StrictModes would reject as world-writable.
            "StrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "AllowTcpForwarding yes\nLogLevel DEBUG1\nMaxStartups 100:30:200\nMaxSessions 100\n"
            + self.extra_config)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec {SSHD} -D -E {self.log} -f {self.config}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._listening, 10, f"sshd on {self.address}:{self.port} (log: {self.log})")
        return self

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"sshd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
        try:
            with socket.create_connection((self.address, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def session_pids(self) -> list[int]:
        """sshd's children: one per connection (each with the session's own processes under it)."""
        return child_pids(self.process.pid) if self.process is not None else []

    def accepted_logins(self) -> int:
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def stop(self) -> None:
        """Everything goes, as in a reboot: the listener, every connection, every session. The directory stays
        for `start()` again; `close()` removes it."""
        if self.process is None:
            return
        tree = _descendants(self.process.pid)
        for pid in [self.process.pid, *tree]:
            _kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        wait_until(lambda: not any(_exists(pid) for pid in tree), 10, "sshd's sessions to end")
        self.process = None

    def restart(self) -> PrivateSshd:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrivateSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_known_hosts(path: Path, *servers: PrivateSshd) -> Path:
    path.write_text("".join(server.known_hosts_line() for server in servers))
    return path


def _descendants(pid: int) -> list[int]:
    found = []
    for child in child_pids(pid):
        found.append(child)
        found.extend(_descendants(child))
    return found


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _exists(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class LocalUser:
    """A real local user for the tests' logins, removed afterwards; `sudo` gives it passwordless sudo."""

    def __init__(self, *, sudo: bool) -> None:
        self.name = f"kmt{secrets.token_hex(4)}"
        self.home = Path(tempfile.mkdtemp(prefix=f"kubemaint-{self.name}-"))
        self.sudo = sudo
        self.sudoers = Path(f"/etc/sudoers.d/kubemaint-test-{self.name}")

    def create(self) -> LocalUser:
        # `-p '*'`: no password, but not locked (sshd without PAM refuses locked accounts, even with a key).
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(self.home), "--shell", "/bin/sh",
                        "--password", "*", self.name], check=True, timeout=30)
        os.chown(self.home, *_ids(self.name))
        if self.sudo:
            rule = self.sudoers.with_name(f".{self.sudoers.name}.new")
            rule.write_text(f"{self.name} ALL=(ALL) NOPASSWD: ALL\n")
            rule.chmod(0o440)
            subprocess.run(["visudo", "-cqf", str(rule)], check=True, timeout=30)
            rule.rename(self.sudoers)
        return self

    def remove(self) -> None:
        self.sudoers.unlink(missing_ok=True)
        uid = _ids(self.name)[0]
        # userdel refuses a user with processes: the sshd sessions of closed connections end a moment later.
        try:
            wait_until(lambda: not _processes_of(uid), 5, f"{self.name}'s processes to end")
        except AssertionError:
            for pid in _processes_of(uid):
                _kill(pid, signal.SIGKILL)
            wait_until(lambda: not _processes_of(uid), 5, f"{self.name}'s processes to die")
        subprocess.run(["userdel", self.name], check=True, timeout=30, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> LocalUser:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _processes_of(uid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        real_uid = next((line.split()[1] for line in lines if line.startswith("Uid:")), None)
        if real_uid == str(uid):
            found.append(int(status.parent.name))
    return found
