"""What every handler process needs, imported once by the bot's fork server (bot/chat/handling.py).

Importing a module is not enough for the kube client: `kubernetes.client` loads its API classes
and their ~800 models on first use, which is the bulk of a handler's start-up (1.4 s of CPU).
The built-in operations are loaded too (they bring paramiko); `operation_modules` from the
configuration are each child's own.
"""

from kubernetes.client import AppsV1Api, CoreV1Api, PolicyV1Api  # noqa: F401

import bot.chat.outbox
import bot.chat.progress
import bot.chat.schedule
import bot.chat.service
import bot.chat.slack_chat
import bot.chat.startup
import bot.chat.threads  # noqa: F401
from bot.contract.registry import operations

operations()
