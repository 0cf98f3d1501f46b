"""Node commands: built from argument lists, run under a deadline, their output drained and kept.

A command is an argv list of validated values, never a string: each argument is quoted with
`shlex.quote` for the login shell sshd starts, so nothing in a value (a node name, a version, a
path) can become shell syntax. What runs on the node is

    timeout -k KILL_AFTER SECONDS [sudo -n] ARGV...

`timeout` (coreutils) enforces the deadline on the node itself, so a command outlives neither its
deadline nor a bot that died or lost the connection. It sits outside `sudo` so that a sudoers
policy can keep listing the programs the bot may run (allowing `timeout` would allow everything);
sudo passes timeout's TERM on to the program. `sudo -n` fails at once instead of waiting for a
password nobody will type.
"""

from __future__ import annotations

import math
import selectors
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import paramiko

from bot.nodes.redact import REDACTED, Redactor, Secret

Arg = str | Secret

KILL_AFTER_SECONDS = 5  # after the deadline's TERM, timeout sends KILL to a program that did not stop
# After the deadline passes, how long to wait for the node to say timeout stopped the program.
CONFIRM_STOP_SECONDS = 1.0
TIMEOUT_EXIT_CODES = (124, 137)  # GNU timeout: TERM worked; KILL was needed
MAX_OUTPUT_BYTES = 64 * 1024 * 1024  # per stream: more is a runaway command, not an answer
TAIL_LINES = 20
TAIL_CHARS = 2000
_REDACT_WINDOW = 256 * 1024  # how much of the end of a stream the tail is cut from (after redaction)
_CHUNK = 64 * 1024
_POLL_SECONDS = 0.25  # the longest a wait for output goes without checking the deadline and the connection


class BadCommand(ValueError):
    """The argv is not a list of strings: refused before anything is sent."""


def check_argv(argv: Sequence[Arg]) -> tuple[Arg, ...]:
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise BadCommand("a node command is a list of arguments (argv), not a string: no shell parses it")
    if not argv:
        raise BadCommand("a node command needs at least the program to run")
    for index, arg in enumerate(argv):
        if not isinstance(arg, str | Secret):
            raise BadCommand(f"argument {index} of a node command is a {type(arg).__name__}, not a str")
        if "\0" in (arg.reveal() if isinstance(arg, Secret) else arg):
            raise BadCommand(f"argument {index} of a node command contains a NUL byte")
    if not isinstance(argv[0], str) or not argv[0] or argv[0].startswith("-"):
        raise BadCommand("the program of a node command must be a plain name or path (not a Secret, not empty, "
                         "not starting with -)")
    return tuple(argv)


def check_deadline(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise BadCommand(f"a node command's deadline must be a positive number of seconds, not {seconds!r}")
    return float(seconds)


def shown(argv: Sequence[Arg], redact: Redactor) -> str:
    """The command as people may read it: quoted as it runs, secrets replaced."""
    return redact(" ".join(REDACTED if isinstance(arg, Secret) else shlex.quote(arg) for arg in argv))


@dataclass(frozen=True)
class RemoteCommand:
    argv: tuple[Arg, ...]  # what the caller asked for, after sudo
    seconds: float  # the deadline the node's `timeout` enforces

    def line(self) -> str:
        """The text sshd hands the login shell (with the secrets: it never leaves this object otherwise)."""
        wrapper = ["timeout", "-k", str(KILL_AFTER_SECONDS), f"{self.seconds:.3f}"]
        return " ".join(shlex.quote(arg.reveal() if isinstance(arg, Secret) else arg) for arg in (*wrapper, *self.argv))


def remote_command(argv: Sequence[Arg], *, sudo: bool, seconds: float) -> RemoteCommand:
    # No "--" after sudo's options: the program name never starts with "-" (check_argv).
    return RemoteCommand((*(("sudo", "-n") if sudo else ()), *argv), seconds)


@dataclass(frozen=True)
class CommandResult:
    """What a node command did. `stdout` and `stderr` are the raw output, for the caller to parse and
    never to show (they may hold secrets); the tails are redacted and safe to keep with the job."""

    node: str
    command: str  # as shown: quoted, redacted
    exit_code: int | None  # None: the node gave none (signal, dropped connection, deadline)
    duration_seconds: float
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    stdout_tail: str = ""
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def tail(text: str, redact: Redactor, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last `lines` lines (at most `chars` characters) of `text`, redacted before they are cut, so
    that a secret is recognised whole (a key's END line still tells what the lines above it are)."""
    window = redact(text[-_REDACT_WINDOW:]).rstrip("\n")
    kept = "\n".join(window.splitlines()[-lines:])
    return kept[-chars:]


def last_lines(text: str, count: int = 3, chars: int = 400) -> str:
    """A short form of a tail for one-line messages (a step's failure detail)."""
    kept = " | ".join(line.strip() for line in text.splitlines()[-count:] if line.strip())
    return kept if len(kept) <= chars else "…" + kept[-chars:]


@dataclass
class Drained:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    ending: str = "exited"  # exited | deadline | dropped | no status | too large


def drain(channel: paramiko.Channel, stop_at: float, limit: int = MAX_OUTPUT_BYTES) -> Drained:
    """Read stdout and stderr as they come, both at once (a full stderr window stalls the program while
    we wait on stdout, and the reverse), until the command ends, `stop_at` (monotonic) passes, or the
    connection drops. paramiko's own timeouts bound a single read only; this bounds the whole."""
    got = Drained()
    with selectors.DefaultSelector() as selector:
        # The channel's fileno is a pipe paramiko signals when either stream has data, EOF or close.
        selector.register(channel.fileno(), selectors.EVENT_READ)
        while True:
            read = False
            while channel.recv_ready():
                got.stdout += channel.recv(_CHUNK)
                read = True
            while channel.recv_stderr_ready():
                got.stderr += channel.recv_stderr(_CHUNK)
                read = True
            if len(got.stdout) > limit or len(got.stderr) > limit:
                got.ending = "too large"
                return got
            if not read and _finished(channel):
                break
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                got.ending = "deadline"
                return got
            if not read:
                selector.select(min(remaining, _POLL_SECONDS))
    if channel.exit_status >= 0:
        got.exit_code = channel.exit_status
    else:
        got.ending = "dropped" if _connection_lost(channel) else "no status"
    return got


def _finished(channel: paramiko.Channel) -> bool:
    # Output can still be on its way after the exit status; it is all in once EOF (or close) arrived.
    return channel.closed or (channel.eof_received and channel.exit_status_ready())


def _connection_lost(channel: paramiko.Channel, settle: float = 1.0) -> bool:
    """Whether the channel ended because its connection did. paramiko closes the channels of a dead
    connection a moment before it marks the connection inactive, so give it that moment."""
    transport = channel.get_transport()
    if channel.eof_received and transport.is_active():
        return False  # the node ended the session in order (a program killed by a signal has no status)
    until = time.monotonic() + settle
    while transport.is_active() and time.monotonic() < until:
        time.sleep(0.02)
    return not transport.is_active()
