"""Approval rules: who may decide, how many approvals, the deadline, late clicks, storage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat.approvals import ApprovalRequest, decide, outcome
from bot.domain.ids import new_approval_id

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
APPROVER = frozenset({"approver"})


def request(needed: int = 1, ttl: int = 1800, **changes) -> ApprovalRequest:
    return ApprovalRequest(
        id="a-0000beef", command_text="cordon node01", requester="UREQ", channel="C0OPS",
        created_at=T0, ttl_seconds=ttl, approvals_needed=needed, **changes,
    )


def test_a_new_request_is_pending_until_its_deadline() -> None:
    pending = request(ttl=600)
    assert pending.state(T0) == "pending"
    assert pending.state(T0 + 599.9) == "pending"
    assert pending.state(T0 + 600) == "expired"
    assert pending.expires_at == T0 + 600


def test_one_approval_approves_when_one_is_needed() -> None:
    decision = decide(request(), "UAPP", APPROVER, "approve", T0 + 60)
    assert decision.changed
    assert decision.message == "Approved by <@UAPP>"
    assert decision.request.state(T0 + 60) == "approved"
    assert decision.request.approvals == (("UAPP", T0 + 60),)
    assert decision.request.decided_at == T0 + 60


def test_two_approvals_needed() -> None:
    first = decide(request(needed=2), "UA", APPROVER, "approve", T0 + 10)
    assert first.changed
    assert first.message == "<@UA> approved (1 of 2); waiting for 1 more approval"
    assert first.request.state(T0 + 10) == "pending"
    second = decide(first.request, "UB", APPROVER, "approve", T0 + 20)
    assert second.message == "Approved by <@UA> and <@UB>"
    assert second.request.state(T0 + 20) == "approved"


def test_the_same_approver_counts_once() -> None:
    first = decide(request(needed=2), "UA", APPROVER, "approve", T0 + 10)
    again = decide(first.request, "UA", APPROVER, "approve", T0 + 11)
    assert not again.changed
    assert again.request == first.request
    assert again.message == "<@UA> has already approved; waiting for 1 more approval"


def test_requester_cannot_approve_even_as_an_approver() -> None:
    decision = decide(request(), "UREQ", APPROVER, "approve", T0 + 1)
    assert not decision.changed
    assert decision.message == "<@UREQ>, you asked for this, so someone else has to approve it"
    assert decision.request.state(T0 + 1) == "pending"


def test_requester_may_withdraw_without_any_role() -> None:
    decision = decide(request(), "UREQ", frozenset(), "deny", T0 + 5)
    assert decision.changed
    assert decision.message == "Withdrawn by <@UREQ> (the requester)"
    assert decision.request.state(T0 + 5) == "denied"
    assert decision.request.withdrawn
    assert outcome(decision.request) == "withdrawn by <@UREQ> at 22:13 UTC"


@pytest.mark.parametrize("action", ["approve", "deny"])
@pytest.mark.parametrize("roles", [frozenset(), frozenset({"viewer"}), frozenset({"operator"})])
def test_only_approvers_decide(action: str, roles: frozenset[str]) -> None:
    decision = decide(request(), "UOPS", roles, action, T0 + 1)  # type: ignore[arg-type]
    assert not decision.changed
    assert decision.message == "<@UOPS> is not an approver; only approvers can approve or deny this"


def test_one_denial_denies() -> None:
    first = decide(request(needed=2), "UA", APPROVER, "approve", T0 + 10)
    denied = decide(first.request, "UB", APPROVER, "deny", T0 + 20)
    assert denied.changed
    assert denied.message == "Denied by <@UB>"
    assert denied.request.state(T0 + 20) == "denied"
    assert denied.request.decided_at == T0 + 20
    assert not denied.request.withdrawn


def test_nothing_changes_after_expiry() -> None:
    expired_at = T0 + 1800
    for user, roles, action in [("UA", APPROVER, "approve"), ("UA", APPROVER, "deny"), ("UREQ", frozenset(), "deny")]:
        decision = decide(request(), user, roles, action, expired_at + 1)  # type: ignore[arg-type]
        assert not decision.changed
        assert decision.message == (
            "This request expired at 22:43 UTC without a decision; ask again with `cordon node01`"
        )


def test_late_clicks_say_who_decided_and_when() -> None:
    approved = decide(request(), "UA", APPROVER, "approve", T0 + 120).request
    for user, action in [("UB", "approve"), ("UB", "deny"), ("UA", "approve"), ("UREQ", "deny")]:
        late = decide(approved, user, APPROVER, action, T0 + 130)  # type: ignore[arg-type]
        assert not late.changed
        assert late.request == approved
        assert late.message == "Already approved by <@UA> at 22:15 UTC"
    denied = decide(request(), "UB", APPROVER, "deny", T0 + 300).request
    assert decide(denied, "UA", APPROVER, "approve", T0 + 301).message == "Already denied by <@UB> at 22:18 UTC"


def test_a_decision_taken_in_time_stands_after_the_deadline() -> None:
    approved = decide(request(ttl=60), "UA", APPROVER, "approve", T0 + 59).request
    assert approved.state(T0 + 10_000) == "approved"
    late = decide(approved, "UB", APPROVER, "deny", T0 + 10_000)
    assert late.message == "Already approved by <@UA> at 22:14 UTC"


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown approval action"):
        decide(request(), "UA", APPROVER, "maybe", T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("approvals_needed", 0), ("ttl_seconds", 0)])
def test_impossible_requests_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        request(**{"needed" if field == "approvals_needed" else "ttl": value})


def test_json_round_trip() -> None:
    first = decide(request(needed=3), "UA", APPROVER, "approve", T0 + 1).request
    second = decide(first, "UB", APPROVER, "approve", T0 + 2).request
    denied = decide(second, "UC", APPROVER, "deny", T0 + 3).request
    for original in (request(), second, denied):
        stored = json.loads(json.dumps(original.to_dict()))
        assert ApprovalRequest.from_dict(stored) == original


@pytest.mark.parametrize(
    "damage", [lambda d: d.pop("requester"), lambda d: d.update(approvals=[["UA"]]), lambda d: d.update(created_at="x")]
)
def test_malformed_records_are_refused(damage) -> None:
    data = request().to_dict()
    damage(data)
    with pytest.raises(ValueError, match="malformed approval request record"):
        ApprovalRequest.from_dict(data)


def test_ids_are_distinct_and_safe_as_button_values() -> None:
    ids = {new_approval_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("a-") and len(i) == 10 for i in ids)


_clicks = st.lists(
    st.tuples(
        st.sampled_from(["UREQ", "UA", "UB", "UC", "UVIEW"]),
        st.sampled_from(["approve", "deny"]),
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=12,
)


@given(needed=st.integers(min_value=1, max_value=3), clicks=_clicks)
def test_click_sequences_keep_the_invariants(needed: int, clicks: list[tuple[str, str, float]]) -> None:
    current = request(needed=needed, ttl=300)
    now = T0
    decided: str | None = None
    for user, action, wait in clicks:
        now += wait
        roles = frozenset() if user in ("UREQ", "UVIEW") else APPROVER
        before = current.state(now)
        decision = decide(current, user, roles, action, now)  # type: ignore[arg-type]
        if before != "pending":
            assert not decision.changed and decision.request == current
        current = decision.request
        approvers = current.approvers
        assert "UREQ" not in approvers and "UVIEW" not in approvers
        assert len(set(approvers)) == len(approvers)
        assert len(approvers) <= needed
        if decided is not None:
            assert current.state(now) == decided  # decisions are final
        elif current.state(now) in ("approved", "denied"):
            decided = current.state(now)
    assert ApprovalRequest.from_dict(json.loads(json.dumps(current.to_dict()))) == current
