"""Who may run what: roles from the config, the verb's policy decides.

Roles are independent sets. An approver is not implicitly an operator (the person who says
"yes" to a drain need not be allowed to start one), so a policy's `allowed_roles` names
every role that may run the verb. Group membership counts: listing a user group id (`S…`)
under a role gives the role to everyone in that group.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.chat.config import RoleSettings, Settings
from bot.chat.grammar import Command
from bot.contract.operation import ROLES, Role


class NotAllowed(Exception):
    """The requester lacks a role the verb's policy asks for. `message` is ready for chat."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def roles_of(user_id: str, group_ids: Iterable[str], roles: RoleSettings) -> frozenset[Role]:
    """The roles `user_id` holds directly or through any of `group_ids`."""
    identities = {user_id, *group_ids}
    members: dict[Role, tuple[str, ...]] = {
        "viewer": roles.viewers,
        "operator": roles.operators,
        "approver": roles.approvers,
    }
    return frozenset(role for role in ROLES if identities.intersection(members[role]))


def check(command: Command, roles: frozenset[str], settings: Settings, *, user_id: str) -> None:
    """Raise `NotAllowed` unless one of `roles` may run `command.verb` under its policy."""
    allowed = settings.policy(command.verb).allowed_roles
    if roles.intersection(allowed):
        return
    who = f"<@{user_id}> {_describe_roles(roles)}"
    if not allowed:
        raise NotAllowed(f"{who}; `{command.verb}` is turned off by policy (no role may run it)")
    needed = allowed[0] if len(allowed) == 1 else f"{', '.join(allowed[:-1])} or {allowed[-1]}"
    raise NotAllowed(f"{who}; `{command.verb}` needs the {needed} role")


def _describe_roles(roles: frozenset[str]) -> str:
    held = [role for role in ROLES if role in roles]
    if not held:
        return "has no kubemaint role"
    return "is " + " and ".join(f"{'an' if role[0] in 'aeiou' else 'a'} {role}" for role in held)
