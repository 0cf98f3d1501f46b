"""The backup schedule: which slot is due, one job per slot however many bot processes race for it, and
the schedule's channel told when a scheduled backup fails. Time is a clock the tests set; the jobs are
real (Redis, the RQ queue, the step runner) and `backup etcd` is tests/toy_backup.py."""

from __future__ import annotations

import importlib
import threading
from calendar import timegm

import pytest
from redis import Redis
from structlog.testing import capture_logs

from bot.chat.config import load_settings
from bot.chat.progress import ProgressPublisher
from bot.chat.schedule import SCHEDULER_USER, Scheduler, last_claimed_slot, scheduler_for, start_scheduler
from bot.chat.throttle import EditThrottle
from bot.contract import Operation
from bot.contract.registry import Registry, operations
from bot.domain.schedule import due_slot
from bot.engine import Timings, get_job, list_jobs, resume
from bot.engine.audit import read_audit
from bot.engine.runner import StepRunner
from tests.fake_clock import Clock

pytest_plugins = ["tests.redis_fixtures"]
EVERY_6H = "0 */6 * * *"


def utc(text: str) -> float:
    """"2026-12-01 06:00" -> epoch seconds."""
    day, clock = text.split()
    year, month, date = (int(part) for part in day.split("-"))
    hour, minute = (int(part) for part in clock.split(":"))
    return float(timegm((year, month, date, hour, minute, 0)))


# -- which slot is due (pure) -------------------------------------------------------------------------


def test_the_latest_slot_at_or_before_now_is_due_once():
    assert due_slot(EVERY_6H, utc("2026-12-01 00:00"), utc("2026-12-01 05:59")) is None
    assert due_slot(EVERY_6H, utc("2026-12-01 00:00"), utc("2026-12-01 06:00")) == utc("2026-12-01 06:00")
    assert due_slot(EVERY_6H, utc("2026-12-01 00:00"), utc("2026-12-01 06:04")) == utc("2026-12-01 06:00")
    assert due_slot(EVERY_6H, utc("2026-12-01 06:00"), utc("2026-12-01 06:04")) is None  # already run


def test_after_a_long_outage_only_the_latest_missed_slot_is_due():
    assert due_slot(EVERY_6H, utc("2026-12-01 00:00"), utc("2026-12-03 13:30")) == utc("2026-12-03 12:00")


def test_slots_are_in_utc_and_aliases_work():
    assert due_slot("@daily", utc("2026-12-01 00:00"), utc("2026-12-02 00:30")) == utc("2026-12-02 00:00")
    assert due_slot("30 2 * * 1", None, utc("2026-12-09 12:00")) == utc("2026-12-07 02:30")  # Monday 02:30 UTC


# -- the scheduler, against Redis --------------------------------------------------------------------


class Chat:
    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []
        self.refs: list[str | None] = []
        self.updates: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def update(self, channel: str, ts: str, text: str, *, blocks=None) -> bool:
        self.updates.append((channel, ts, text))
        return True

    def post(self, channel: str, text: str, *, thread_ts: str | None = None, blocks=None, ref=None) -> str:
        with self.lock:
            self.posts.append((channel, text))
            self.refs.append(ref)
            return f"m-{len(self.posts)}"


@pytest.fixture
def clock() -> Clock:
    return Clock(utc("2026-12-01 05:00"))


@pytest.fixture
def chat() -> Chat:
    return Chat()


def scheduler(r: Redis, chat: Chat, clock: Clock, *, modules: tuple[str, ...] = ("tests.toy_backup",),
              holder: str = "bot-a") -> Scheduler:
    return Scheduler(r, with_stand_in(modules), {"redis": r}, chat, cron=EVERY_6H, channel="C0OPS", clock=clock,
                     holder=holder)


def with_stand_in(modules: tuple[str, ...]) -> Registry:
    """The built-in operations with the real `backup etcd` (which needs a cluster) taken out, and `modules`'."""
    extra = [value for name in modules for value in vars(importlib.import_module(name)).values()
             if isinstance(value, Operation)]
    kept = [op for op in operations().values() if op.words != "backup etcd"]
    return Registry([*kept, *extra], operations().resources.values())


def run(r: Redis, job_id: str) -> str:
    """The job as a worker runs it, in this process."""
    return StepRunner(r, job_id, "test-worker", Timings(lock_wait=0),
                      resources_factory=lambda cluster: {"redis": r}).run()


def test_each_slot_submits_one_job_as_the_scheduler(r: Redis, chat: Chat, clock: Clock):
    bot = scheduler(r, chat, clock)
    assert bot.tick() is None  # 05:00: the 00:00 slot was before the bot started
    clock.now = utc("2026-12-01 06:00")
    job_id = bot.tick()
    record = get_job(r, job_id)
    assert (record.spec.command_text, record.spec.verb, record.spec.requester, record.spec.channel) == \
           ("backup etcd", "backup-etcd", SCHEDULER_USER, "C0OPS")
    assert record.spec.approvers == [] and record.state == "queued"
    clock.now = utc("2026-12-01 06:00") + 30
    assert bot.tick() is None  # the same slot, half a minute later
    clock.now = utc("2026-12-01 12:01")
    assert bot.tick() is not None
    assert len(list_jobs(r)) == 2 and last_claimed_slot(r, "backup-etcd") == utc("2026-12-01 12:00")


def race(bots: list[Scheduler]) -> list[str | None]:
    """Every bot ticks at the same moment, each in its own thread; what each submitted."""
    start = threading.Barrier(len(bots))
    submitted: list[str | None] = []

    def tick(bot: Scheduler) -> None:
        start.wait()
        submitted.append(bot.tick())

    threads = [threading.Thread(target=tick, args=(bot,)) for bot in bots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(submitted) == len(bots)
    return submitted


def test_two_bots_racing_for_a_slot_submit_one_job(r: Redis, chat: Chat, clock: Clock):
    bots = [scheduler(r, chat, clock, holder=f"bot-{n}") for n in range(2)]
    clock.now = utc("2026-12-01 06:00")
    for _ in range(20):  # twenty slots, each raced for by both at once
        assert len([job for job in race(bots) if job]) == 1
        clock.now += 6 * 3600
    assert len(list_jobs(r, limit=100)) == 20


def test_a_bot_that_starts_after_another_ran_the_slot_does_not_run_it_again(r: Redis, chat: Chat, clock: Clock):
    first = scheduler(r, chat, clock, holder="bot-a")
    clock.now = utc("2026-12-01 06:00")
    assert first.tick() is not None
    clock.now = utc("2026-12-01 06:02")
    assert scheduler(r, chat, clock, holder="bot-b").tick() is None  # started late, same Redis
    assert len(list_jobs(r)) == 1


def test_a_slot_missed_while_every_bot_was_down_runs_once_when_one_is_back(r: Redis, chat: Chat, clock: Clock):
    before = scheduler(r, chat, clock)
    clock.now = utc("2026-12-01 06:00")
    assert before.tick() is not None
    clock.now = utc("2026-12-02 01:30")  # down from 06:05 until now: 12:00, 18:00 and 00:00 were missed
    back = scheduler(r, chat, clock)
    assert back.tick() is not None and back.tick() is None
    assert last_claimed_slot(r, "backup-etcd") == utc("2026-12-02 00:00") and len(list_jobs(r)) == 2


def test_without_a_backup_operation_the_slot_is_skipped_with_a_warning(r: Redis, chat: Chat, clock: Clock):
    bot = scheduler(r, chat, clock, modules=())
    clock.now = utc("2026-12-01 06:00")
    with capture_logs() as logs:
        assert bot.tick() is None
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["schedule.no_operation"]
    assert "no operation answers to `backup etcd`" in warnings[0]["reason"]
    assert list_jobs(r) == [] and chat.posts == []
    assert [e["event"] for e in read_audit(r, 10**10)] == ["schedule.skipped"]


def test_the_schedule_runs_in_the_bot_only_when_configured(r: Redis, chat: Chat, tmp_path):
    base = "slack: {bot_token: xoxb-1, app_token: xapp-1}\nroles: {approvers: [U0APP]}\n"
    (tmp_path / "plain.yaml").write_text(base)
    (tmp_path / "scheduled.yaml").write_text(base + "backups: {schedule: '@hourly', schedule_channel: C0OPS}\n")
    stop = threading.Event()
    assert start_scheduler(load_settings(tmp_path / "plain.yaml", env={}), r, {}, chat, stop) is None
    thread = start_scheduler(load_settings(tmp_path / "scheduled.yaml", env={}), r, {}, chat, stop)
    try:
        assert thread is not None and thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_failed_scheduled_backup_is_posted_to_the_channel_once(r: Redis, chat: Chat, clock: Clock):
    bots = [scheduler(r, chat, clock, holder=f"bot-{n}") for n in range(2)]
    r.set("toy-backup:fail", "etcdctl: context deadline exceeded")
    clock.now = utc("2026-12-01 06:00")
    job_id = bots[0].tick()
    assert run(r, job_id) == "failed"
    for bot in bots:
        bot.tick()
        bot.tick()
    assert len(chat.posts) == 1
    channel, text = chat.posts[0]
    assert channel == "C0OPS"
    assert text.startswith("⚠️ The scheduled `backup etcd` of 2026-12-01 06:00 UTC failed.")
    assert "etcdctl: context deadline exceeded" in text and f"Next: `resume {job_id}`" in text


def test_resuming_a_failed_scheduled_backup_shows_its_progress_in_the_failure_post(r: Redis, chat: Chat,
                                                                                   clock: Clock):
    bot = scheduler(r, chat, clock)
    r.set("toy-backup:fail", "etcdctl: context deadline exceeded")
    clock.now = utc("2026-12-01 06:00")
    job_id = bot.tick()
    run(r, job_id)
    bot.tick()
    r.delete("toy-backup:fail")  # the operator fixed what broke it
    assert resume(r, job_id, by="U0ALICE").kind == "resumed"
    assert run(r, job_id) == "succeeded"
    publisher = ProgressPublisher(r, chat, EditThrottle(per_job_interval=0, per_minute=1000), wall_clock=clock)
    publisher.start()
    publisher.dirty[job_id] = 0.0
    publisher.flush()
    [(channel, ts, text)] = chat.updates
    assert (channel, ts) == ("C0OPS", chat.refs[0]) and f"Job `{job_id}` · `backup etcd` · succeeded" in text


def test_a_scheduled_backup_that_succeeds_is_quiet(r: Redis, chat: Chat, clock: Clock):
    bot = scheduler(r, chat, clock)
    clock.now = utc("2026-12-01 06:00")
    job_id = bot.tick()
    assert run(r, job_id) == "succeeded"
    bot.tick()
    assert chat.posts == [] and [j.decode() for j in r.lrange("toy-backup:runs", 0, -1)] == [job_id]


def test_a_scheduled_backup_that_cannot_start_is_posted(r: Redis, chat: Chat, clock: Clock):
    r.set("toy-backup:refuse", "no control-plane node is Ready")
    bot = scheduler(r, chat, clock)
    clock.now = utc("2026-12-01 06:00")
    assert bot.tick() is None
    assert chat.posts == [("C0OPS", "⚠️ The scheduled `backup etcd` of 2026-12-01 06:00 UTC did not start: no "
                                    "control-plane node is Ready. It runs again at the next slot; to run it now, "
                                    "type `backup etcd`.")]


def test_the_progress_publisher_leaves_scheduled_jobs_alone(r: Redis, chat: Chat, clock: Clock):
    publisher = ProgressPublisher(r, chat, EditThrottle(per_job_interval=0, per_minute=1000), wall_clock=clock)
    publisher.start()
    bot = scheduler(r, chat, clock)
    clock.now = utc("2026-12-01 06:00")
    job_id = bot.tick()
    publisher.dirty[job_id] = 0.0
    publisher.flush()
    assert publisher.dirty == {} and chat.posts == []  # no message to edit, and none waited for


def test_each_clusters_schedule_submits_that_clusters_backup_in_the_same_slot(r: Redis, chat: Chat, clock: Clock,
                                                                               tmp_path):
    """With several clusters, each has its own schedule: its slots are claimed apart from the other's, and its
    job runs `backup etcd --cluster NAME` against that cluster with that cluster's locks, reported in its channel."""
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"""slack: {{bot_token: xoxb-1, app_token: xapp-1}}
roles: {{approvers: [U0BOB]}}
backups: {{schedule: "{EVERY_6H}"}}
clusters:
  staging: {{kubeconfig: /k, channels: [C0STAGING]}}
  prod: {{kubeconfig: /k, channels: [C0PROD]}}
""")
    settings = load_settings(config, env={})
    bots = {}
    for name in ("staging", "prod"):
        bot = scheduler_for(settings.for_cluster(name), r, {"redis": r}, chat, clock=clock)
        bot.operations = with_stand_in(("tests.toy_backup",))  # the real `backup etcd` needs a cluster
        bots[name] = bot
    clock.now = utc("2026-12-01 06:00")
    jobs = {name: get_job(r, bot.tick()) for name, bot in bots.items()}
    for name, record in jobs.items():
        assert (record.spec.cluster, record.spec.command_text, record.spec.locks) == \
            (name, f"backup etcd --cluster {name}", [f"{name}/cluster:etcd-backup"])
    assert (jobs["staging"].spec.channel, jobs["prod"].spec.channel) == ("C0STAGING", "C0PROD")
    assert last_claimed_slot(r, "backup-etcd:prod") == last_claimed_slot(r, "backup-etcd:staging") == \
        utc("2026-12-01 06:00")
