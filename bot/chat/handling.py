"""Handler processes: the work behind each Slack request runs apart from the process that acks.

Planning a command reads the whole cluster and renders it, which keeps the GIL busy. In the
process that talks to Slack, a burst of twenty commands held acks back for a few hundred
milliseconds (Slack re-sends what is not acked within 3 s). So `kubemaint serve` only acks and
forwards each request, a small picklable `Request`, to `handler_processes` child processes that
each run requests in their own thread pool. One more child, the background process, sends
everything the handlers queue to Slack (the outbox), publishes job progress, expires
approval requests and runs the backup schedule (bot/chat/schedule.py). A child that dies is
started again; the requests a handler was working on are lost, as they would be if the whole bot
had crashed.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from redis import Redis

    from bot.chat.config import Settings
    from bot.chat.service import Kubemaint

log = structlog.get_logger("kubemaint.handling")
THREADS_PER_PROCESS = 32
SUPERVISE_INTERVAL = 1.0
START_TIMEOUT = 60.0  # how long a request waits for the first children at start-up
DELIVERY_TTL = 3600
PRELOAD = ["bot.chat.preload"]  # what every child imports, loaded once by the fork server


@dataclass(frozen=True)
class Request:
    """What a listener hands over: `kind` is message, command or click; `key` makes a Slack
    re-delivery recognisable (the same key is handled once)."""

    kind: str
    key: str
    user: str
    channel: str
    text: str = ""  # message and command text
    thread_ts: str | None = None
    action_id: str = ""  # clicks
    value: str = ""
    message_ts: str = ""  # the clicked card, and its text as Slack shows it
    message_text: str = ""


def first_delivery(redis: Redis, key: str) -> bool:
    return bool(redis.set(f"kubemaint:delivery:{key}", "1", nx=True, ex=DELIVERY_TTL))


def group_ids(settings: Settings) -> list[str]:
    """Every user group any role names, at the top level or in a cluster's own roles."""
    every = [settings.roles, *(cluster.roles for cluster in settings.clusters.values())]
    return sorted({g for roles in every for g in (*roles.viewers, *roles.operators, *roles.approvers)
                   if g.startswith("S")})


def start_background(service: Kubemaint, redis: Redis, settings: Settings, slack: Any,
                     stop: threading.Event) -> list[threading.Thread]:
    """In the background process: the outbox's sender (the one place that posts to Slack), the progress
    publisher (with approval expiry) and, if configured, the backup schedule."""
    from bot.chat.outbox import OutboxSender
    from bot.chat.progress import ProgressPublisher
    from bot.chat.schedule import start_scheduler
    from bot.chat.throttle import EditThrottle

    throttle = EditThrottle(per_job_interval=settings.progress.edit_interval_seconds,
                            per_minute=settings.progress.updates_per_minute)
    publisher = ProgressPublisher(redis, service.chat, throttle, describe=service.describe_now)
    threads = [
        threading.Thread(target=OutboxSender(redis, slack).run, args=(stop,), name="outbox", daemon=True),
        threading.Thread(target=publisher.run, args=(stop,), kwargs={"idle": service.expire_requests},
                         name="progress", daemon=True),
    ]
    for thread in threads:
        thread.start()
    # Every bot process runs the schedule (each cluster's); a claim in Redis decides which one submits each slot's job.
    schedulers = [start_scheduler(service.clusters.settings_for(name), redis, service.clusters.resources_for(name),
                                  service.chat, stop) for name in service.clusters.names]
    return [*threads, *(scheduler for scheduler in schedulers if scheduler is not None)]


def handle(service: Kubemaint, request: Request) -> None:
    """Run one request against the service (in a handler process)."""
    from bot.chat.service import Message

    if request.kind == "message":
        service.handle_message(Message(request.user, request.channel, request.thread_ts, request.text))
    elif request.kind == "command":
        # A slash command leaves no message to reply under, so start the thread ourselves.
        ts = service.chat.post(request.channel, f"<@{request.user}>: `/kubemaint {request.text}`")
        service.handle_message(Message(request.user, request.channel, ts, request.text))
    elif request.kind == "click":
        service.handle_click(request.user, request.channel, request.action_id, request.value,
                             card=(request.message_ts, request.message_text))
    else:
        raise ValueError(f"unknown request kind {request.kind!r}")


class Handlers:
    """The pool of handler processes, started with `start()` and fed with `submit()`.

    Each process reads its own pipe; requests go round the live ones in turn. (One shared
    multiprocessing.Queue would be simpler, but a reader killed while waiting on it keeps the
    queue's lock for ever, and the replacement process would never get a request.)
    """

    def __init__(self, config_path: str | None, processes: int, threads: int = THREADS_PER_PROCESS) -> None:
        # forkserver, not fork: the parent runs threads (Socket Mode, bolt), and a forked copy of a
        # process with threads can inherit a lock held mid-operation. The fork server is a fresh
        # single-threaded process that imports the handlers' modules once (PRELOAD); each child is a
        # fork of it, ready in a fraction of a second, where a spawned child paid ~2.8 s of CPU to
        # import them again (and a restarted one kept Slack waiting that long).
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._config_path = config_path
        self._threads = threads
        # One more process than handlers: the background one (the outbox's sender and the progress
        # publisher), apart so that sending to Slack does not compete with planning for a GIL.
        self._slots: list[_Slot | None] = [None] * (processes + 1)
        self._background = processes
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="handler-supervisor", daemon=True)

    def start(self) -> None:
        """Start the fork server now, the children in the background: the fork server imports for a
        few seconds before its first fork, and the bot connects to Slack meanwhile (requests wait
        in `submit` until the children are there)."""
        # Ctrl-C reaches the whole process group, but the bot decides when handlers stop. The fork
        # server, started while SIGINT is ignored, hands that on to every child it forks, so a child
        # ignores Ctrl-C from its first instruction; only the main thread (where start() runs) may
        # change the disposition. (run_handler ignores it again, for good measure.)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
        threading.Thread(target=self._start_children, name="handler-start", daemon=True).start()

    def _start_children(self) -> None:
        for index in range(len(self._slots)):
            if self._stop.is_set():
                break
            self._spawn(index)
        self._started.set()
        self._supervisor.start()

    def submit(self, request: Request) -> None:
        if not self._started.wait(timeout=START_TIMEOUT):
            log.error("handler.not_started", key=request.key)
            return
        with self._lock:  # one writer per pipe at a time, and no respawn in between
            slots = self._slots[: self._background]
            for _ in range(len(slots)):
                slot = slots[next(self._turn) % len(slots)]
                if slot is not None and slot.process.is_alive():
                    try:
                        slot.pipe.send(request)
                        return
                    except OSError:
                        continue  # it died just now; the supervisor replaces it
            log.error("handler.none_alive", key=request.key)

    def stop_replacing(self) -> None:
        """From now on a child that dies stays dead: the bot is stopping (a SIGTERM to the process
        group ends the children first, and their replacements would only be killed half started)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every child's pipe (each finishes its work and exits), then wait for them all within
        one `timeout` and kill what is left: the bot's own stop must not take a timeout per child."""
        self._stop.set()
        with self._lock:
            for slot in self._slots:
                if slot is not None:
                    slot.pipe.close()  # the handler reads the end of its pipe and finishes its work
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            if slot is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    slot.process.kill()

    def _spawn(self, index: int) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        if index == self._background:
            process = self._context.Process(target=run_background, name="kubemaint-background",
                                            args=(self._config_path, reader), daemon=True)
        else:
            process = self._context.Process(target=run_handler, name=f"kubemaint-handler-{index}",
                                            args=(self._config_path, reader, index, self._threads), daemon=True)
        process.start()
        reader.close()  # the child has its own copy; ours would keep the pipe open after the child died
        with self._lock:
            old = self._slots[index]
            self._slots[index] = _Slot(process, writer)
        if old is not None:
            old.pipe.close()
        log.info("handler.started", index=index, pid=process.pid)

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_INTERVAL):
            for index, slot in enumerate(self._slots):
                if slot is not None and not slot.process.is_alive() and not self._stop.is_set():
                    log.error("handler.died", index=index, pid=slot.process.pid, exitcode=slot.process.exitcode)
                    self._spawn(index)


@dataclass
class _Slot:
    process: Any
    pipe: Any  # the write end of the handler's pipe


def _process_service(config_path: str | None) -> tuple[Any, Any, Any]:
    """What a child of `serve` builds at start: its settings, a Redis client and the service, whose
    chat is the outbox (handlers enqueue what they say; the background process sends it)."""
    from redis import Redis

    from bot.chat.outbox import Outbox
    from bot.chat.service import Kubemaint
    from bot.chat.slack_chat import SlackChat, web_client
    from bot.chat.startup import load_or_exit, process_clusters
    from bot.engine.audit import configure_logging

    # Ctrl-C in a terminal reaches the whole process group; the bot decides when its children stop
    # (it closes their pipes), so a handler finishes its requests instead of dying mid-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already so for the first ones (see Handlers.start())
    configure_logging()
    settings = load_or_exit(config_path)
    redis = Redis.from_url(settings.redis_url)
    lookups = SlackChat(web_client(settings.slack.bot_token.get_secret_value(), settings.slack.base_url),
                        group_ids(settings))
    return settings, redis, Kubemaint(settings, redis, process_clusters(settings), Outbox(redis, lookups.groups_of))


def run_handler(config_path: str | None, requests: Any, index: int, threads: int) -> None:
    """A handler process: build the service, then run requests until the bot closes the pipe
    (or dies, which closes it too)."""
    from bot.chat.startup import freeze_start_up_objects
    from bot.chat.threads import started_pool
    from bot.engine.audit import audit

    _, redis, service = _process_service(config_path)
    pool = started_pool(threads, f"handler{index}")
    from kubernetes.client import AppsV1Api, CoreV1Api, PolicyV1Api  # noqa: F401  (loaded lazily otherwise)

    for name in service.clusters.names:
        warm_up(service.clusters.resources_for(name))
    freeze_start_up_objects()

    def work_safely(request: Request) -> None:
        if not first_delivery(redis, request.key):
            audit(redis, "delivery.duplicate", key=request.key)
            return
        try:
            handle(service, request)
        except Exception as error:  # the log has the details; the audit trail has the fact
            log.exception("handler.error", key=request.key)
            audit(redis, "handler.error", key=request.key, error=str(error)[:300])

    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            break
        pool.submit(work_safely, request)
    pool.shutdown(wait=True)


def warm_up(resources: Any) -> None:
    """The cluster client built and its first TLS connection opened before the first request: they cost
    the first `status` after a start about a second. A request that arrives meanwhile waits in the
    pipe; a cluster that cannot be reached now is the first request's to report, not start-up's."""
    from bot.cluster.kube import api_answers

    try:
        api_answers(resources["kube"], timeout=2.0)
    except Exception as error:  # no kube section, a bad kubeconfig: said by the request that needs it
        log.info("handler.warm_up_skipped", error=str(error)[:200])


def run_background(config_path: str | None, bot: Any) -> None:
    """The background process: the outbox's sender and the progress publisher, until the bot closes
    the pipe (or dies, which closes it too)."""
    from bot.chat.slack_chat import SlackChat, web_client
    from bot.chat.startup import freeze_start_up_objects

    settings, redis, service = _process_service(config_path)
    # The sender's client leaves 429s to the outbox, which pauses and retries queue-wide.
    direct = SlackChat(web_client(settings.slack.bot_token.get_secret_value(), settings.slack.base_url,
                                  retry_rate_limited=False), group_ids(settings))
    stop = threading.Event()
    threads = start_background(service, redis, settings, direct, stop)
    freeze_start_up_objects()
    with contextlib.suppress(EOFError, OSError):
        while True:
            bot.recv()  # nothing comes: the end of the pipe is the bot's end
    stop.set()
    for thread in threads:
        thread.join(timeout=2)  # they wait at most a second on Redis; the bot kills what is left
