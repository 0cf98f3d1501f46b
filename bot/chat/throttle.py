"""When the progress messages may be edited: at most one edit per job every few seconds,
and all jobs together under Slack's chat.update budget (tier 3, about 50 per minute)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EditThrottle:
    per_job_interval: float = 3.0
    per_minute: float = 45.0
    burst: float = 10.0
    _last_edit: dict[str, float] = field(default_factory=dict)
    _tokens: float = -1.0
    _refilled_at: float = 0.0

    def _refill(self, now: float) -> None:
        if self._tokens < 0:
            self._tokens, self._refilled_at = self.burst, now
            return
        self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.per_minute / 60)
        self._refilled_at = now

    def wait_time(self, job_id: str, now: float) -> float:
        """Seconds until this job's message may be edited (0 = now)."""
        self._refill(now)
        last = self._last_edit.get(job_id)
        per_job = 0.0 if last is None else max(0.0, last + self.per_job_interval - now)
        budget = 0.0 if self._tokens >= 1 else (1 - self._tokens) * 60 / self.per_minute
        return max(per_job, budget)

    def record(self, job_id: str, now: float) -> None:
        self._refill(now)
        self._tokens -= 1
        self._last_edit[job_id] = now

    def forget(self, job_id: str) -> None:
        self._last_edit.pop(job_id, None)
