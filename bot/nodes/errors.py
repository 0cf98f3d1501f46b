"""What can go wrong on the way to a node and on it, each with a message an operator can act on.

The message of every error is final text (a step's failure detail, a line of `check-config`): it
names the node and says what happened, whether anything ran, and what to do. Nothing secret is
in it: command lines and output in it have been through the redactor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.nodes.command import CommandResult


class NodeError(Exception):
    """Base of the SSH layer's errors. `node` is the node's name (or the jump host's label)."""

    # Which part of reaching a node failed, for check-config's report: "address", "connect",
    # "host key", "auth", "command", "sudo".
    stage = "connect"

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(message)


class NoAddress(NodeError):
    stage = "address"


class SshSetupError(NodeError):
    """The bot's own side is wrong: the key file or known_hosts cannot be used. Nothing was tried."""

    stage = "setup"


class Unreachable(NodeError):
    """No SSH connection: refused, timed out, or the handshake failed. Nothing ran."""


class UnknownHostKey(NodeError):
    """The node offered a host key known_hosts does not list. Nothing ran."""

    stage = "host key"

    def __init__(self, node: str, message: str, *, key_type: str, fingerprint: str) -> None:
        super().__init__(node, message)
        self.key_type = key_type
        self.fingerprint = fingerprint


class ChangedHostKey(UnknownHostKey):
    """The node offered a key other than the one known_hosts lists for it. Nothing ran."""

    def __init__(self, node: str, message: str, *, key_type: str, fingerprint: str, expected_fingerprint: str
                 ) -> None:
        super().__init__(node, message, key_type=key_type, fingerprint=fingerprint)
        self.expected_fingerprint = expected_fingerprint


class AuthFailed(NodeError):
    """The node refused the login. Nothing ran."""

    stage = "auth"


class CommandError(NodeError):
    """A command was started and did not end well. `result` holds what is known of it."""

    stage = "command"

    def __init__(self, node: str, message: str, result: CommandResult) -> None:
        super().__init__(node, message)
        self.result = result

    @property
    def stderr_tail(self) -> str:
        return self.result.stderr_tail


class CommandFailed(CommandError):
    """The command exited with a status other than 0 (or ended without one: killed by a signal)."""


class SudoRefused(CommandFailed):
    """`sudo -n` would not run the command: a password is needed, or the user may not."""

    stage = "sudo"


class CommandDeadline(CommandError):
    """The command's overall deadline passed; it was stopped on the node."""


class SessionDropped(CommandError):
    """The connection ended while the command ran: whether it finished is unknown."""


class OutputTooLarge(CommandError):
    """The command printed more than the layer keeps; it was stopped."""


class TransferFailed(NodeError):
    """A file copy to or from the node failed or ran past its deadline; a partial copy was removed."""

    stage = "transfer"
