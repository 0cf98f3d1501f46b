"""Fault injection and request counting for the lab's API."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

ERRORS = ("429", "500", "503", "drop")


@dataclass
class Rule:
    verb: str = "*"  # get, list, watch, create, update, patch, delete, or *
    resource: str = "*"  # pods, pods/eviction, nodes, ... or *
    rate: float = 0.0
    error: str = "500"
    retry_after: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> Rule:
        rule = cls(
            verb=str(data.get("verb", "*")),
            resource=str(data.get("resource", "*")),
            rate=float(data.get("rate", 0.0)),
            error=str(data.get("error", "500")),
            retry_after=int(data.get("retryAfter", data.get("retry_after", 1))),
        )
        if rule.error not in ERRORS:
            raise ValueError(f"fault error must be one of {', '.join(ERRORS)}, got {rule.error!r}")
        if not 0.0 <= rule.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rule.rate}")
        return rule

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource)

    def as_dict(self) -> dict:
        return {"verb": self.verb, "resource": self.resource, "rate": self.rate,
                "error": self.error, "retryAfter": self.retry_after}


@dataclass
class Faults:
    latency_ms: float = 0.0
    rules: list[Rule] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    def configure(self, data: dict) -> None:
        latency = float(data.get("latencyMs", data.get("latency_ms", 0.0)))
        if latency < 0:
            raise ValueError("latencyMs must not be negative")
        rules = [Rule.from_dict(r) for r in data.get("rules") or []]
        self.latency_ms, self.rules = latency, rules
        if "seed" in data:
            self.rng.seed(int(data["seed"]))

    def as_dict(self) -> dict:
        return {"latencyMs": self.latency_ms, "rules": [r.as_dict() for r in self.rules]}

    def pick(self, verb: str, resource: str) -> Rule | None:
        """The fault to inject for this request, if any."""
        for rule in self.rules:
            if rule.matches(verb, resource) and self.rng.random() < rule.rate:
                return rule
        return None


@dataclass
class RequestCounter:
    # Per client (its User-Agent's product, "kubemaint" or "kubectl"), so that a test can tell the bot's
    # requests from those of the lab's own kubeadm and kubelets; the totals are summed from these.
    by_agent: dict[str, Counter] = field(default_factory=dict)

    def count(self, method: str, path: str, user_agent: str = "") -> None:
        agent = user_agent.split("/", 1)[0] or "unknown"
        self.by_agent.setdefault(agent, Counter())[f"{method} {path}"] += 1

    def snapshot(self) -> dict:
        requests = sum(self.by_agent.values(), Counter())
        return {"total": sum(requests.values()), "requests": dict(requests),
                "by_agent": {agent: dict(counts) for agent, counts in self.by_agent.items()}}

    def reset(self) -> None:
        self.by_agent.clear()
