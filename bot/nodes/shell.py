"""`NodeShell`: the "ssh" resource operations use to run commands on nodes.

    ssh = ctx.resources["ssh"]
    held = ssh.run("node01", ["apt-mark", "showhold"], address=internal_ip, sudo=True, deadline=30, job=ctx)
    held.stdout          # raw output, to parse (never to show: it may hold secrets)
    held.stderr_tail     # redacted: safe to keep with the job

Every command is audited (job, requester, node, command, exit code, duration), whether it ran or was
refused on the way; a failure raises a `NodeError` whose message is ready for the step's progress line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paramiko
import structlog

from bot.nodes import transfer
from bot.nodes.command import (
    CONFIRM_STOP_SECONDS,
    KILL_AFTER_SECONDS,
    MAX_OUTPUT_BYTES,
    TIMEOUT_EXIT_CODES,
    Arg,
    BadCommand,
    CommandResult,
    Drained,
    check_argv,
    check_deadline,
    drain,
    last_lines,
    remote_command,
    shown,
    tail,
)
from bot.nodes.config import NODE_NAME, SshConfig
from bot.nodes.connection import CONNECTION_ERRORS, Connection, Endpoint, HostKeySeen, open_client
from bot.nodes.credentials import Credentials, load_credentials
from bot.nodes.errors import (
    CommandDeadline,
    CommandError,
    CommandFailed,
    NoAddress,
    NodeError,
    OutputTooLarge,
    SessionDropped,
    SudoRefused,
    TransferFailed,
    Unreachable,
)
from bot.nodes.host_keys import load_known_hosts
from bot.nodes.metrics import observe_command
from bot.nodes.redact import Redactor, Secret
from bot.nodes.transfer import Copied

AuditSink = Callable[..., Any]  # audit(event, **fields), e.g. bot.engine.audit.audit with its Redis bound
AUDIT_EVENT = "node.command"
log = structlog.get_logger("kubemaint.nodes")

# What sudo -n says when it will not run a command without a password (sudo 1.8 and 1.9).
_SUDO_REFUSALS = ("a password is required", "is not in the sudoers file", "is not allowed to execute",
                  "a terminal is required", "may not run sudo")


class JobContext(Protocol):
    """Whom a command is run for: a step's StepContext has both."""

    @property
    def job_id(self) -> str | None: ...

    @property
    def requester(self) -> str | None: ...


@dataclass(frozen=True)
class JobRef:
    """Who a command is run for, when the caller is not a step (a step passes its StepContext, which has
    the same two attributes)."""

    job_id: str | None
    requester: str | None


class NodeShell:
    """Commands on nodes over SSH, one connection per node, strict host keys. Thread-safe."""

    max_output_bytes = MAX_OUTPUT_BYTES  # per stream and command: more is stopped as a runaway

    def __init__(self, config: SshConfig, *, audit: AuditSink | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.redact = Redactor()
        self._audit = audit
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._connections: dict[str, Connection] = {}
        self._jump: Connection | None = None

    # -- the API operations use ----------------------------------------------------------------------

    def run(self, node: str, argv: Sequence[Arg], *, address: str | None = None, sudo: bool = False,
            deadline: float | None = None, job: JobContext | None = None, check: bool = True) -> CommandResult:
        """Run `argv` on `node` and return what it did.

        `address`: the node's InternalIP (ssh.addresses overrides it). `sudo`: run as root (`sudo -n`
        unless ssh.user is root). `deadline`: seconds from the command's start (default
        ssh.command_deadline_seconds); connecting is bounded by ssh.connect_timeout_seconds apart.
        `job`: who it is for (a StepContext, or a JobRef), for the audit. `check`: raise CommandFailed
        on a non-zero exit (False: return the result, for commands whose exit code is the answer).
        Raises BadCommand for a malformed argv, before anything is sent, and a NodeError otherwise.
        """
        argv = check_argv(argv)
        seconds = check_deadline(self.config.command_deadline_seconds if deadline is None else deadline)
        if not isinstance(node, str) or not NODE_NAME.fullmatch(node):
            raise BadCommand(f"{node!r} is not a node name")
        for arg in argv:
            if isinstance(arg, Secret):
                self.redact.add(arg)
        remote = remote_command(argv, sudo=sudo and not self.config.is_root, seconds=seconds)
        command = shown(remote.argv, self.redact)
        record: dict[str, Any] = {"job": getattr(job, "job_id", None), "requester": getattr(job, "requester", None),
                                  "node": node, "address": None, "command": command}
        started = time.monotonic()
        result: CommandResult | None = None
        try:
            record["address"] = target = self.address_of(node, address)
            channel = self.connection(node, target).open_session(timeout=self.config.connect_timeout_seconds)
            try:
                started = time.monotonic()
                _start(channel, remote.line(), node, command)
                drained = drain(channel, started + seconds, self.max_output_bytes)
                if drained.ending == "deadline":
                    # The node's timeout stops it at about this moment: wait a little to be able to say so.
                    drained = _confirm_stop(channel, drained)
            finally:
                channel.close()
            result = self._result(node, command, drained, time.monotonic() - started)
            record.update(exit_code=result.exit_code, duration_s=round(result.duration_seconds, 3))
            self._raise_for(drained, result, target, seconds, sudo=sudo, check=check)
            record["outcome"] = "ok" if result.ok else f"exit {result.exit_code}"
            return result
        except NodeError as error:
            result = getattr(error, "result", None)
            record["outcome"] = _outcome(error)
            record.setdefault("duration_s", round(time.monotonic() - started, 3))
            record["error"] = str(error)
            raise
        except Exception as error:  # a fault of ours or paramiko's: still on the record, without its text
            record["outcome"] = f"error ({type(error).__name__})"
            record.setdefault("duration_s", round(time.monotonic() - started, 3))
            raise
        finally:
            observe_command(record.get("outcome", "error"), time.monotonic() - started)
            self._record(record)
            self._keep(job, record, result)

    def fetch(self, node: str, remote: str, local: Path, *, address: str | None = None,
              deadline: float | None = None, job: JobContext | None = None) -> Copied:
        """Copy the node's file `remote` to `local` over SFTP (as ssh.user: the file must be readable by it).
        Returns its size and sha256; raises TransferFailed (nothing is left at `local`) or a NodeError."""
        return self._transfer("get", node, remote, local, address, deadline, job)

    def send(self, node: str, local: Path, remote: str, *, address: str | None = None,
             deadline: float | None = None, job: JobContext | None = None) -> Copied:
        """Copy `local` to the node's `remote` over SFTP (mode 0600, owned by ssh.user)."""
        return self._transfer("put", node, remote, local, address, deadline, job)

    def _transfer(self, direction: str, node: str, remote: str, local: Path, address: str | None,
                  deadline: float | None, job: JobContext | None) -> Copied:
        seconds = check_deadline(self.config.command_deadline_seconds if deadline is None else deadline)
        if not isinstance(node, str) or not NODE_NAME.fullmatch(node):
            raise BadCommand(f"{node!r} is not a node name")
        if not remote.startswith("/") or any(c in remote for c in "\n\r\0"):
            raise BadCommand(f"{remote!r} is not an absolute path on the node")
        command = f"sftp {direction} {remote}" + (f" -> {local}" if direction == "get" else f" <- {local}")
        record: dict[str, Any] = {"job": getattr(job, "job_id", None), "requester": getattr(job, "requester", None),
                                  "node": node, "address": None, "command": command}
        started = time.monotonic()
        try:
            record["address"] = target = self.address_of(node, address)
            sftp = self.connection(node, target).open_sftp(timeout=self.config.connect_timeout_seconds)
            try:
                copied = (transfer.fetch(sftp, remote, local, seconds) if direction == "get"
                          else transfer.send(sftp, local, remote, seconds))
            finally:
                sftp.close()
            record.update(outcome="ok", bytes=copied.size, sha256=copied.sha256)
            return copied
        except transfer.TransferTimeout as late:
            record["outcome"] = "deadline"
            raise TransferFailed(node, f"{node}: `{command}` {late}; the partial copy was removed.") from None
        except CONNECTION_ERRORS as error:
            if isinstance(error, OSError) and error.errno is not None and not isinstance(error, ConnectionError):
                # The node's SFTP server refused (no such file, permission denied), or our disk did.
                record["outcome"] = "failed"
                raise TransferFailed(node, f"{node}: `{command}` failed: {error.strerror or error}. Nothing was "
                                           "copied.") from None
            record["outcome"] = "dropped"
            raise TransferFailed(node, f"{node} ({record['address']}): the connection dropped during `{command}`: "
                                       f"{self.redact(str(error) or type(error).__name__)}; the partial copy was "
                                       "removed.") from None
        except NodeError as error:
            record["outcome"] = _outcome(error)
            record["error"] = str(error)
            raise
        finally:
            record["duration_s"] = round(time.monotonic() - started, 3)
            self._record(record)
            self._keep(job, record, None)

    def address_of(self, node: str, address: str | None) -> str:
        """Where `node` is reached: ssh.addresses[node] if set, else the address the caller passed."""
        chosen = self.config.addresses.get(node) or address
        if not chosen:
            raise NoAddress(node, f"{node}: no address to reach it at: the node has no InternalIP and "
                                  f"ssh.addresses has no entry for it. Nothing was run.")
        return chosen

    def connection(self, node: str, address: str) -> Connection:
        """The node's connection (made on first use). A node whose address changed gets a new one."""
        with self._lock:
            current = self._connections.get(node)
            if current is not None and current.endpoint.address == address:
                return current
            endpoint = Endpoint(node, address, self.config.port, self.config.user)
            created = self._connections[node] = Connection(endpoint, lambda: self._open(endpoint))
        if current is not None:
            current.close()
        return created

    def credentials(self) -> Credentials:
        """The login, loaded on first use (a wrong key or passphrase surfaces as SshSetupError)."""
        with self._lock:
            if self._credentials is None:
                self._credentials = load_credentials(self.config, self._environ, self.redact)
            return self._credentials

    def preflight(self) -> str:
        """Check the bot's own side (known_hosts readable, key file and passphrase) without reaching any
        node; raises SshSetupError. Returns what it found, for check-config."""
        known = load_known_hosts(self.config.known_hosts)
        via = f", through jump host {self.config.jump_host.address}" if self.config.jump_host else ""
        return (f"user {self.config.user}, port {self.config.port}{via}, known_hosts {self.config.known_hosts} "
                f"({len(known)} hosts), login with {self.credentials().describe()}")

    def close(self) -> None:
        with self._lock:
            connections = [*self._connections.values(), *([self._jump] if self._jump else [])]
            self._connections.clear()
            self._jump = None
        for connection in connections:
            connection.close()

    # -- connecting -----------------------------------------------------------------------------------

    def _open(self, endpoint: Endpoint) -> tuple[paramiko.SSHClient, HostKeySeen]:
        credentials = self.credentials()
        sock = None
        if self.config.jump_host is not None:
            sock = self._jump_connection().open_forward(endpoint.address, endpoint.port,
                                                        timeout=self.config.connect_timeout_seconds)
        return open_client(endpoint, self.config, credentials, self.redact, sock=sock)

    def _jump_connection(self) -> Connection:
        jump = self.config.jump_host
        assert jump is not None
        with self._lock:
            if self._jump is None:
                endpoint = Endpoint(f"jump host {jump.address}", jump.address, jump.port, jump.user)
                self._jump = Connection(endpoint, lambda: open_client(endpoint, self.config, self.credentials(),
                                                                      self.redact))
            return self._jump

    # -- results, errors, audit -----------------------------------------------------------------------

    def _result(self, node: str, command: str, drained: Drained, duration: float) -> CommandResult:
        stdout = drained.stdout.decode("utf-8", errors="replace")
        stderr = drained.stderr.decode("utf-8", errors="replace")
        return CommandResult(node, command, drained.exit_code, duration, stdout, stderr,
                             tail(stdout, self.redact), tail(stderr, self.redact))

    def _raise_for(self, drained: Drained, result: CommandResult, address: str, seconds: float, *, sudo: bool,
                   check: bool) -> None:
        node, command = result.node, result.command
        said = f" Last stderr: {last_lines(result.stderr_tail)}" if result.stderr_tail.strip() else ""
        if drained.ending == "deadline":
            if result.exit_code in TIMEOUT_EXIT_CODES:
                stopped = f"the node stopped it (timeout exited with {result.exit_code})"
            else:
                stopped = f"the node's timeout stops it (TERM, then KILL {KILL_AFTER_SECONDS}s later)"
            raise CommandDeadline(node, f"{node}: `{command}` did not finish within its deadline of {seconds:g}s: "
                                        f"{stopped}.{said}", result)
        if drained.ending == "too large":
            raise OutputTooLarge(node, f"{node}: `{command}` printed more output than the bot keeps; it was stopped."
                                       f"{said}", result)
        if drained.ending == "dropped":
            raise SessionDropped(node, f"{node} ({address}:{self.config.port}): the connection dropped while "
                                       f"`{command}` was running ({result.duration_seconds:.1f}s in): it may or may "
                                       "not have finished on the node; check before running it again (the next "
                                       f"command connects again).{said}", result)
        if drained.ending == "no status":
            raise CommandFailed(node, f"{node}: `{command}` ended without an exit status (killed by a signal?).{said}",
                                result)
        if result.ok or not check:
            return
        first = result.stderr_tail.strip().splitlines()[:1]
        if (sudo and not self.config.is_root and result.exit_code == 1 and first and first[0].startswith("sudo:")
                and any(refusal in first[0] for refusal in _SUDO_REFUSALS)):
            user = self.config.user
            raise SudoRefused(node, f"{node}: sudo refused to run `{command}` for {user}: {first[0]} The bot runs "
                                    f"`sudo -n` (it cannot type a password): give {user} passwordless sudo (NOPASSWD) "
                                    "for this command on the node.", result)
        raise CommandFailed(node, f"{node}: `{command}` exited with {result.exit_code}: "
                                  f"{last_lines(result.stderr_tail) or 'no error output'}", result)

    def _keep(self, job: JobContext | None, record: dict[str, Any], result: CommandResult | None) -> None:
        """The command's redacted output tails, kept with its job (a step's context keeps them; a JobRef does not)."""
        keep = getattr(job, "keep_output", None)
        if not callable(keep):
            return
        entry = {key: record[key] for key in ("node", "command", "exit_code", "duration_s", "outcome", "error")
                 if record.get(key) is not None}
        entry["at"] = time.time()
        if result is not None:
            entry.update(stdout_tail=result.stdout_tail, stderr_tail=result.stderr_tail)
        try:
            keep(entry)
        except Exception as error:  # the command's outcome must still reach its caller
            log.error("node.output_not_kept", node=record["node"], reason=type(error).__name__)

    def _record(self, record: dict[str, Any]) -> None:
        fields = {key: value for key, value in record.items() if value is not None}
        if fields.get("outcome") in (None, "ok"):
            log.info(AUDIT_EVENT, **fields)
        else:
            log.warning(AUDIT_EVENT, **fields)
        if self._audit is None:
            return
        try:
            self._audit(AUDIT_EVENT, **fields)
        except Exception as error:  # the command's outcome must still reach its caller
            log.error("node.audit_failed", reason=f"{type(error).__name__}: {self.redact(str(error))}", **fields)


def _start(channel: paramiko.Channel, line: str, node: str, command: str) -> None:
    try:
        channel.exec_command(line)
    except CONNECTION_ERRORS as error:
        # sshd refuses an exec request before it starts anything; only a connection that died during the
        # exchange leaves the question open.
        transport = channel.get_transport()
        ran = ("Nothing was run." if transport is not None and transport.is_active()
               else "The connection dropped as it was being started: it may have started; check the node.")
        raise Unreachable(node, f"{node}: could not start `{command}`: {error or type(error).__name__}. {ran}"
                          ) from None


def _confirm_stop(channel: Any, drained: Drained) -> Drained:
    more = drain(channel, time.monotonic() + CONFIRM_STOP_SECONDS)
    drained.stdout += more.stdout
    drained.stderr += more.stderr
    drained.exit_code = more.exit_code
    return drained


def _outcome(error: NodeError) -> str:
    if isinstance(error, CommandDeadline):
        return "deadline"
    if isinstance(error, SessionDropped):
        return "dropped"
    if isinstance(error, OutputTooLarge):
        return "too large"
    if isinstance(error, CommandError):
        return "failed"
    return f"not run ({error.stage})"
