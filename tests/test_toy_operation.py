"""An operation declared in tests/toy_operation.py, outside the product, runs end to end: through
the Slack emulator, the bot's grammar, policy and approval card, and a worker, with nothing but
the config key `operation_modules` telling kubemaint about it."""

from __future__ import annotations

import pytest

from tests.chat_driver import ALICE, BOB, VICTOR, Chat, Stack, text_of
from tests.toy_operation import LABEL


@pytest.fixture(scope="module")
def chat():
    with Stack(time_scale=0.05, workers=1, operation_modules=("tests.toy_operation",)) as stack:
        yield Chat(stack)


def test_the_toy_operation_is_planned_approved_and_run_by_a_worker(chat):
    assert "`stamp node NODE [--times COUNT]` — label a node with a count of stamps" in chat.ask("help").reply["text"]

    thread = chat.ask("stamp node node01 --times 3")
    card = text_of(thread.reply)
    assert "asks to run `stamp node node01 --times 3`" in card  # its policy asks for an approval
    assert f"Label node01 with {LABEL}=3" in card and "\u2003◦ today: no such label" in card
    job_id = thread.approve(BOB)
    done = thread.wait_progress("succeeded", timeout=60)["text"]
    assert "✅ stamp node01" in done and "✅ check the stamp on node01" in done
    assert f"node01 carries {LABEL}=3" in done and "Next: `stamp node node01`" in done
    assert chat.job(job_id).spec.verb == "stamp"
    assert chat.stack.lab.get("/api/v1/nodes/node01")["metadata"]["labels"][LABEL] == "3"


def test_the_toy_operation_gets_the_grammar_and_the_policy_of_any_other(chat):
    wrong = chat.ask("stamp nodes node01").reply["text"]
    assert '`stamp` needs `node` here, not "nodes"' in wrong and "Usage: stamp node NODE [--times COUNT]" in wrong
    assert '--times: "0" is not a count' in chat.ask("stamp node node01 --times 0").reply["text"]
    assert "`stamp` needs the operator role" in chat.ask("stamp node node01", user=VICTOR).reply["text"]
    assert "node node09 not found" in chat.ask("stamp node node09", user=ALICE).reply["text"]
