"""Two clusters behind one bot, end to end: `staging` and `prod`, each a lab of its own with its own channel.

A command goes to its channel's cluster (or the one `--cluster` names) and touches nothing in the other;
cards and progress name the cluster in bold; locks, roles and approvals are each cluster's own.
"""

from __future__ import annotations

import pytest

from bot.engine.audit import read_audit
from tests.chat_driver import ALICE, BOB, CAROL, CHANNEL, Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(22)

STAGING, PROD = "C0STAGING", "C0PROD"
DAN = "U0DAN"  # an operator of staging (the top-level roles), not of prod (prod's own roles)


@pytest.fixture(scope="module")
def stack():
    with Stack(clusters={"staging": "seeds-os-upgrade", "prod": "seeds-os-upgrade"},
               cluster_channels={"staging": STAGING, "prod": PROD}, machines=False, time_scale=0.05,
               extra_users={DAN: "operator"},
               # prod: Alice alone may operate, Carol alone may approve.
               cluster_roles={"prod": {"operators": [ALICE], "approvers": [CAROL]}}) as running:
        yield running


def node_states(stack: Stack, cluster: str) -> dict[str, bool]:
    """Each node of the cluster: cordoned or not."""
    return {n["metadata"]["name"]: bool(n["spec"].get("unschedulable"))
            for n in stack.labs[cluster].get("/api/v1/nodes")["items"]}


def placement(stack: Stack, cluster: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in stack.labs[cluster].pods("default")
            if not p["metadata"].get("deletionTimestamp")}


def test_a_drain_in_staging_leaves_prod_alone(stack):
    staging, prod = Chat(stack, STAGING), Chat(stack, PROD)
    prod_pods = placement(stack, "prod")
    drain = staging.ask("drain node01 --force")
    assert text_of(drain.reply).startswith("*staging* · ")  # the card names its cluster first, in bold
    assert "`drain node01 --force --cluster staging`" in text_of(drain.reply)
    job_id = drain.approve()
    record = staging.wait_job(job_id, ("succeeded",))
    assert record.spec.cluster == "staging" and record.spec.locks == ["staging/node:node01"]
    final = drain.wait_progress("succeeded", what="the drain's final edit")["text"]
    assert "· *staging* · `drain node01 --force --cluster staging`" in final
    assert "Next: `uncordon node01 --cluster staging`" in final  # typed anywhere, it still means staging's node01

    assert node_states(stack, "staging")["node01"] is True
    assert "hr-app" not in placement(stack, "staging")
    assert node_states(stack, "prod")["node01"] is False  # prod: not cordoned, nothing moved
    assert placement(stack, "prod") == prod_pods

    # Prod's node01 is another node: its lock is free while staging's node01 is drained.
    cordon = prod.ask("cordon node01")
    assert text_of(cordon.reply).startswith("*prod* · ")
    cordon_id = cordon.approve(user=CAROL)
    assert prod.wait_job(cordon_id, ("succeeded",)).spec.locks == ["prod/node:node01"]
    assert node_states(stack, "prod")["node01"] is True
    prod.ask("uncordon node01").wait_progress("succeeded", what="prod's uncordon")
    staging.ask("uncordon node01 --cluster staging").wait_progress("succeeded", what="staging's uncordon")
    assert not any(node_states(stack, "staging").values()) and not any(node_states(stack, "prod").values())

    events = [e for e in read_audit(staging.redis, 3600) if e.get("event") == "request" and e.get("cluster")]
    assert {e["cluster"] for e in events} == {"staging", "prod"}  # the audit trail names the cluster


def test_cluster_names_the_other_cluster_and_an_unknown_one_is_refused_with_the_list(stack):
    staging = Chat(stack, STAGING)
    status = staging.ask("status --cluster prod").reply["text"]
    assert status.startswith("*prod* · ")
    refused = staging.ask("cordon node01 --cluster qa").reply
    assert refused["text"] == 'unknown cluster "qa": the clusters are staging, prod'
    assert not refused.get("blocks")
    nowhere = Chat(stack, CHANNEL).ask("status").reply["text"]  # #ops belongs to no cluster
    assert nowhere == "this channel has no cluster of its own: add --cluster NAME (the clusters are staging, prod)"
    jobs = Chat(stack, CHANNEL).ask("jobs").reply["text"]  # jobs belong to no one cluster: answered anywhere
    assert jobs == "No jobs yet." or jobs.startswith("*Jobs*")
    assert not any(node_states(stack, "staging").values()) and not any(node_states(stack, "prod").values())


def test_an_operator_of_staging_is_not_one_of_prod(stack):
    staging, prod = Chat(stack, STAGING), Chat(stack, PROD)
    refused = prod.ask("cordon node01", user=DAN).reply["text"]
    assert refused == "*prod* · <@U0DAN> has no kubemaint role; `cordon` needs the operator role"
    assert "needs the operator role" in staging.ask("cordon node01 --cluster prod", user=DAN).reply["text"]

    card = staging.ask("cordon node01", user=DAN)  # staging: Dan may ask, Bob may approve
    assert text_of(card.reply).startswith("*staging* · <@U0DAN> asks to run `cordon node01 --cluster staging`")
    staging.wait_job(card.approve(user=BOB), ("succeeded",))
    assert node_states(stack, "staging")["node01"] is True

    # Prod's approver is Carol only: Bob's click on a prod card changes nothing.
    prod_card = prod.ask("cordon node01")
    prod_card.click("approve", BOB)
    assert "approver" in prod.wait_ephemeral(BOB)["args"]["text"]
    assert prod_card.card().get("blocks") and node_states(stack, "prod")["node01"] is False
    prod_job = prod.wait_job(prod_card.approve(user=CAROL), ("succeeded",))
    assert node_states(stack, "prod")["node01"] is True
    # A command about a job is about its cluster, whichever channel it is typed in.
    refused = staging.ask(f"cancel {prod_job.id}", user=DAN).reply["text"]
    assert refused.startswith("*prod* · ") and "`cancel` needs the operator role" in refused
    staging.ask("uncordon node01").wait_progress("succeeded")
    prod.ask("uncordon node01").wait_progress("succeeded")


def test_help_names_the_clusters(stack):
    assert "Every command takes `--cluster NAME` (clusters: staging, prod)" in Chat(stack, CHANNEL).ask("help").reply[
        "text"]
