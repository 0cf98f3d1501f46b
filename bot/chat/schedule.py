"""Scheduled backups: in each slot of `backups.schedule`, `backup etcd` runs as a job, once, whichever of
the bot's processes (or replicas) gets there first.

Every bot's background process runs a `Scheduler`. At each tick it asks which slot is due (the latest
slot after the last one claimed, bot/domain/schedule.py), claims it with `SET NX` (one key per slot,
with an expiry), and only the process that claimed it plans and submits the job, as the user
`scheduler`. The command goes through the grammar and the registry like a typed one, so the schedule
needs no operation by name: until an operation answers to `backup etcd`, each slot is skipped with a
warning. A scheduled job has no progress message (it would be noise every few hours); when one fails
or halts, the first process to notice posts it, with its checklist and the resume command, to
`backups.schedule_channel`. A job that could not even be planned is posted the same way.

A slot is claimed before its job is queued: a process that dies in between loses that slot's backup
(the next slot runs as usual). The other order could run it twice.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError

from bot.chat.clusters import qualified_command
from bot.chat.grammar import GrammarError, parse
from bot.chat.outbox import new_ref
from bot.chat.progress import quiet_job, remember_message
from bot.contract.registry import Registry
from bot.contract.reports import job_view, scheduled_failure_text, scheduled_not_started_text
from bot.domain.schedule import due_slot
from bot.engine import JobSpec, JobState, get_job, queue
from bot.engine.audit import audit
from bot.engine.locks import qualify

log = structlog.get_logger("kubemaint.schedule")
SCHEDULER_USER = "scheduler"  # the requester of scheduled jobs, in the audit trail and in `backups`
BACKUP_COMMAND = "backup etcd"
SLOT_CLAIM_TTL = 7 * 24 * 3600  # a claim outlives any slot a process could still consider (see LAST_SLOT)
TICK_SECONDS = 5.0

# The latest slot claimed: processes consider only later ones. Kept without expiry; raised, never lowered.
_RAISE_LAST_SLOT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


def _last_slot_key(name: str) -> str:
    return f"kubemaint:schedule:{name}:last"


def _slot_key(name: str, slot: float) -> str:
    return f"kubemaint:schedule:{name}:slot:{int(slot)}"


def _watched_key(name: str) -> str:
    return f"kubemaint:schedule:{name}:jobs"  # hash: job id -> its slot, until it ends


def claim_slot(redis: Redis, name: str, slot: float, holder: str) -> bool:
    """True for exactly one caller per schedule and slot, however many race."""
    if not redis.set(_slot_key(name, slot), holder, nx=True, ex=SLOT_CLAIM_TTL):
        return False
    redis.register_script(_RAISE_LAST_SLOT)(keys=[_last_slot_key(name)], args=[int(slot)])
    return True


def last_claimed_slot(redis: Redis, name: str) -> float | None:
    raw = redis.get(_last_slot_key(name))
    return float(raw) if raw else None


class Scheduler:
    """Runs `command` in each slot of `cron` and posts its failures to `channel`.

    `clock` is injectable so tests decide what time it is; `holder` names this process in the claim.
    """

    def __init__(self, redis: Redis, operations: Registry, resources: Mapping[str, Any], chat: Any, *, cron: str,
                 channel: str, command: str = BACKUP_COMMAND, name: str = "backup-etcd",
                 clock: Callable[[], float] = time.time, holder: str | None = None, cluster: str = "") -> None:
        self.redis = redis
        self.cluster = cluster  # with several clusters, each has its own schedule, slots and command
        self.operations = operations
        self.resources = resources
        self.chat = chat
        self.cron = cron
        self.channel = channel
        self.command = command
        self.name = name
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        # With no slot ever claimed (a new Redis), slots from before this process started are not due: a
        # first start should not back up at once for a slot long past.
        self.started_at = clock()
        self._warned = False

    def tick(self) -> str | None:
        """Report scheduled jobs that ended badly, then submit the due slot's job if this process claims it.
        Returns the id of the job submitted, if any."""
        now = self.clock()
        self.report_failures(now)
        last = last_claimed_slot(self.redis, self.name)
        slot = due_slot(self.cron, last if last is not None else self.started_at, now)
        if slot is None or not claim_slot(self.redis, self.name, slot, self.holder):
            return None
        return self._submit(slot)

    def _submit(self, slot: float) -> str | None:
        try:
            command = parse(self.command, self.operations)
        except GrammarError:
            if not self._warned:  # once per process, not every few hours
                log.warning("schedule.no_operation", command=self.command,
                            reason=f"no operation answers to `{self.command}`: the schedule's slots are skipped")
                self._warned = True
            audit(self.redis, "schedule.skipped", command=self.command, slot=int(slot), reason="no such operation")
            return None
        operation = command.operation
        if operation.read_only:
            log.warning("schedule.read_only", command=self.command)
            return None
        try:
            plan = operation.plan(operation.gather(self.resources, command.options), command.options)
        except Exception as error:  # the cluster or a node did not answer: say so where people look
            log.exception("schedule.plan_failed", command=command.text)
            self._not_started(command.text, slot, f"{type(error).__name__}: {error}")
            return None
        if plan.refusal:
            self._not_started(command.text, slot, plan.refusal)
            return None
        spec = JobSpec.create(operation.name, command.text, SCHEDULER_USER, plan.steps, channel=self.channel,
                              locks=[qualify(target, self.cluster) for target in plan.locks],
                              next_command=qualified_command(plan.next_command, self.cluster), cluster=self.cluster)
        # Marked and watched before it is queued: a worker may finish it before the next line runs.
        quiet_job(self.redis, spec.id, self.channel)
        self.redis.hset(_watched_key(self.name), spec.id, int(slot))
        queue.submit(self.redis, spec)
        audit(self.redis, "schedule.submitted", job=spec.id, command=command.text, slot=int(slot), holder=self.holder)
        return spec.id

    def _not_started(self, command_text: str, slot: float, reason: str) -> None:
        audit(self.redis, "schedule.not_started", command=command_text, slot=int(slot), reason=reason[:300])
        self.chat.post(self.channel, scheduled_not_started_text(command_text, slot, reason))

    def report_failures(self, now: float) -> list[str]:
        """Post each watched job that failed or halted, once across all processes; forget those that ended well.
        Returns the ids posted."""
        posted = []
        for raw_id, raw_slot in self.redis.hgetall(_watched_key(self.name)).items():
            job_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            record = get_job(self.redis, job_id)
            if record is not None and record.active:
                continue
            if not self.redis.hdel(_watched_key(self.name), job_id):
                continue  # another process took it
            if record is not None and record.state in (JobState.FAILED, JobState.HALTED):
                # The post becomes the job's message: someone who types `resume` sees it turn into the
                # checklist of the resumed run, edited in place like any job's.
                ref = new_ref()
                remember_message(self.redis, job_id, self.channel, ref)
                self.chat.post(self.channel, scheduled_failure_text(job_view(record, now), float(raw_slot)), ref=ref)
                audit(self.redis, "schedule.failure_reported", job=job_id, channel=self.channel)
                posted.append(job_id)
        return posted

    def run(self, stop: threading.Event, interval: float = TICK_SECONDS) -> None:
        """Tick until `stop` is set; a Redis outage or a failing tick is logged and the loop goes on."""
        redis_down = False
        while not stop.is_set():
            try:
                self.tick()
                redis_down = False
            except RedisError as error:
                if not redis_down:  # once per outage
                    log.warning("schedule.redis_unreachable", error=str(error))
                redis_down = True
            except Exception:
                log.exception("schedule.error")
            stop.wait(interval)


def scheduler_for(settings: Any, redis: Redis, resources: Mapping[str, Any], chat: Any, *,
                  clock: Callable[[], float] = time.time) -> Scheduler | None:
    """The backup schedule of the settings' cluster (None without `backups.schedule`): with several clusters,
    each has its own slots, runs `backup etcd --cluster NAME` and reports in its own channel."""
    section = settings.backups
    if not section.schedule:
        return None
    cluster = settings.cluster_name
    return Scheduler(redis, settings.operations, resources, chat, cron=section.schedule,
                     channel=section.schedule_channel, cluster=cluster, clock=clock,
                     command=qualified_command(BACKUP_COMMAND, cluster),
                     name=f"backup-etcd:{cluster}" if cluster else "backup-etcd")


def start_scheduler(settings: Any, redis: Redis, resources: Mapping[str, Any], chat: Any,
                    stop: threading.Event) -> threading.Thread | None:
    """The backup schedule's thread in the bot's background process, if `backups.schedule` is set."""
    scheduler = scheduler_for(settings, redis, resources, chat)
    if scheduler is None:
        return None
    thread = threading.Thread(target=scheduler.run, args=(stop,), name=f"{scheduler.name}-schedule", daemon=True)
    thread.start()
    log.info("schedule.started", cron=scheduler.cron, channel=scheduler.channel, command=scheduler.command)
    return thread
