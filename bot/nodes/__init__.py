"""The nodes as machines: SSH to each node (paramiko), with strict host keys, deadlines and an
audit of every command. Independent of the job engine and of the cluster client.

    shell.py        NodeShell, the "ssh" resource: run(node, argv, ...) -> CommandResult
    command.py      argv -> the quoted command line; the deadline; draining stdout and stderr
    connection.py   one connection per node (or through the jump host), reused, opened again after a drop
    host_keys.py    known_hosts, RejectPolicy, and what a refusal says
    credentials.py  the key file (passphrase from the environment) and the agent
    transfer.py     files to and from a node over SFTP, hashed on the way, no partial file left
    redact.py       Secret arguments; secrets kept out of logs, the audit and errors
    check.py        every node reached once, for `kubemaint check-config --nodes`
    facts.py        the fixed script of what a node says about itself, and its pure parser
    survey.py       one node's facts, or one question to many nodes at once under a time cap (status)
    errors.py       NodeError and its kinds
"""

from bot.nodes.command import BadCommand, CommandResult
from bot.nodes.config import JumpHost, SshConfig
from bot.nodes.errors import (
    AuthFailed,
    ChangedHostKey,
    CommandDeadline,
    CommandError,
    CommandFailed,
    NoAddress,
    NodeError,
    OutputTooLarge,
    SessionDropped,
    SshSetupError,
    SudoRefused,
    TransferFailed,
    UnknownHostKey,
    Unreachable,
)
from bot.nodes.redact import Secret
from bot.nodes.shell import JobRef, NodeShell

__all__ = [
    "AuthFailed", "BadCommand", "ChangedHostKey", "CommandDeadline", "CommandError", "CommandFailed",
    "CommandResult", "JobRef", "JumpHost", "NoAddress", "NodeError", "NodeShell", "OutputTooLarge", "Secret",
    "SessionDropped", "SshConfig", "SshSetupError", "SudoRefused", "TransferFailed", "UnknownHostKey",
    "Unreachable",
]
