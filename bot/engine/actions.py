"""The action registry and what an action sees while it runs (`StepContext`).

Operations register their step functions with one decorator:

    @action("cordon")
    def cordon(ctx: StepContext, node: str) -> str:
        client = ctx.resources["kube"]
        ...                      # re-check the world first: the step may be a re-run
        return f"{node} cordoned"  # the detail line shown in the thread

A step's args are stored as JSON; a parameter annotated with a dataclass (an operation's frozen
options, say) is rebuilt as that type before the call (`invoke`).

An action must be idempotent: after a crash the runner calls it again from the start, with the
`checkpoint_data` it had saved. Long actions call `ctx.progress(...)` now and then and stop at safe
points with `ctx.stop_if_cancelled()` (or check `ctx.cancelled()` and raise `JobCancelled`). A step that
works node after node (a rollout) checks `ctx.pause_requested()` before it starts a node and, once its
current nodes are done, raises `JobPaused`: the job pauses there and a resume re-runs the step from its
checkpoint. A step that must wait for a time (its maintenance window ended) raises
`JobPaused(reason, until=ts)`: the job continues by itself at `ts`. Steps
of one job share values through `ctx.job_data` (a drain's deadline, say), never by reading another
step's checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import typing
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from pydantic import TypeAdapter

ActionFn = Callable[..., str | None]
F = TypeVar("F", bound=ActionFn)

ACTIONS: dict[str, ActionFn] = {}


class UnknownAction(LookupError):
    pass


class JobCancelled(Exception):
    """Raised at a safe point to stop the job: the step is left unfinished, its checkpoint kept."""


class JobPaused(Exception):
    """Raised at a safe point to pause the job: the step goes back to pending with its checkpoint kept,
    the locks are released, and the step runs again (from its checkpoint) when the job continues.

    Without `until` the job is paused until someone types `resume` (raise it when `ctx.pause_requested()`);
    with `until` (a time.time() timestamp) it is scheduled to continue by itself then. `reason` is shown
    in the job's message ("the maintenance window ended at 06:00").
    """

    def __init__(self, reason: str = "", *, until: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until


def action(name: str) -> Callable[[F], F]:
    """Register `fn(ctx, **args) -> str | None` as the action `name`."""

    def register(fn: F) -> F:
        existing = ACTIONS.get(name)
        if existing is not None and _qualified(existing) != _qualified(fn):
            raise ValueError(f"action {name!r} is already registered by {_qualified(existing)}")
        ACTIONS[name] = fn
        return fn

    return register


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def invoke(fn: ActionFn, ctx: StepContext, args: Mapping[str, Any]) -> str | None:
    """Call `fn(ctx, **args)`, rebuilding the dataclass-typed parameters from their JSON."""
    adapters = _adapters(fn)
    return fn(ctx, **{name: adapters[name].validate_python(value) if name in adapters and isinstance(value, dict)
                      else value for name, value in args.items()})


@functools.cache
def _adapters(fn: ActionFn) -> dict[str, TypeAdapter]:
    hints = typing.get_type_hints(fn)
    return {name: TypeAdapter(hint) for name, hint in hints.items()
            if name != "return" and isinstance(hint, type) and dataclasses.is_dataclass(hint)}


def get_action(name: str) -> ActionFn:
    try:
        return ACTIONS[name]
    except KeyError:
        known = ", ".join(sorted(ACTIONS)) or "none"
        raise UnknownAction(
            f"no action named {name!r} is registered in this worker (is the module that defines it imported? "
            f"known actions: {known})") from None


class Resources(dict):
    """What actions need from the outside world (kube clients, SSH, ...), keyed by name.

    The worker builds it with its `resources_factory` for each job run, in the process that runs the job.
    """

    def __missing__(self, key: str) -> Any:
        known = ", ".join(sorted(self)) or "none"
        raise KeyError(f"no resource named {key!r}: the worker's resources_factory provides: {known}")

    def close(self) -> None:
        for value in self.values():
            close = getattr(value, "close", None)
            if callable(close):
                close()


class SharedResources(Resources):
    """Resources a worker keeps for its whole life and lends to every job run: closing a run leaves them open."""

    def close(self) -> None:
        pass


# Called with the job's cluster ("" for a configuration without several clusters): its resources.
ResourcesFactory = Callable[[str], Mapping[str, Any]]


class CheckpointData(MutableMapping[str, Any]):
    """A per-step dict persisted in Redis on every assignment, so a re-run can resume where it stopped.

    Values must be JSON-serialisable. Assign to persist (`data["evicted"] = names`); after mutating a
    nested value in place, call `save()`.
    """

    def __init__(self, initial: Mapping[str, Any], save: Callable[[dict[str, Any]], None]) -> None:
        self._data = dict(initial)
        self._save = save
        # A step may work on several nodes in threads (an upgrade's wave): a change and its save go
        # together, so a slower thread never writes back an older copy over a newer one.
        self._lock = threading.RLock()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self.save()

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]
            self.save()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def save(self) -> None:
        with self._lock:
            self._save(dict(self._data))

    def __repr__(self) -> str:
        return f"CheckpointData({self._data!r})"


class StepContext:
    """What the runner hands to an action."""

    def __init__(self, *, job_id: str, step: str, resources: Any, log: Any, checkpoint_data: CheckpointData,
                 cancelled: Callable[[], bool], progress: Callable[[str], None],
                 job_data: CheckpointData | None = None, requester: str | None = None,
                 node_output: Callable[[Mapping[str, Any]], None] | None = None,
                 pause_requested: Callable[[], bool] | None = None) -> None:
        self.job_id = job_id
        self.requester = requester  # who asked for the job: node commands are audited with it
        self.step = step
        self.resources = resources
        self.log = log
        self.checkpoint_data = checkpoint_data  # this step's own, kept across re-runs of the step
        self.job_data = job_data if job_data is not None else CheckpointData({}, lambda values: None)
        self._cancelled = cancelled
        self._pause_requested = pause_requested
        self._progress = progress
        self._node_output = node_output

    def cancelled(self) -> bool:
        """True once the job should stop at the next safe point (cancel requested, or this run lost its job)."""
        return self._cancelled()

    def pause_requested(self) -> bool:
        """True once someone asked to pause the job (`pause ID`). Cheap (the answer may be a fraction of a
        second old), so a rollout can ask before every node. The runner pauses between steps by itself; a
        long step that honours it lets its current nodes finish, starts no new one and raises `JobPaused`."""
        return self._pause_requested() if self._pause_requested is not None else False

    def stop_if_cancelled(self) -> None:
        """A safe point: raise JobCancelled if the job should stop."""
        if self._cancelled():
            raise JobCancelled()

    def keep_output(self, entry: Mapping[str, Any]) -> None:
        """Keep what a node command printed with the job (bot/nodes calls this for every command a step runs)."""
        if self._node_output is not None:
            self._node_output(entry)

    def progress(self, detail: str) -> None:
        """Report progress of a long step (an event on the stream; the bot throttles what it shows)."""
        self._progress(detail)
