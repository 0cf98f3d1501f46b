"""The operation contract: phrases with keywords and typed arguments, flags with defaults defined
once, the registry that finds operations, and the typed options a step receives."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import pytest

from bot.chat.grammar import GrammarError, parse
from bot.contract import (
    COUNT,
    DURATION,
    NODES,
    SELECTOR,
    Ignored,
    NoOptions,
    Operation,
    Plan,
    flag,
    ignored,
)
from bot.contract.registry import Registry, load, operations
from bot.engine import Step, StepContext
from bot.engine.actions import CheckpointData, invoke
from handlers.restore_etcd import RestoreOptions


@dataclass(frozen=True)
class UpgradeTo:
    version: str
    nodes: tuple[str, ...] | None = flag(NODES)
    max_unavailable: int = flag(COUNT, default=1)
    window: int | None = flag(DURATION)


@dataclass(frozen=True)
class Backup:
    pod_selector: str | None = flag(SELECTOR)


def _answer(asking, options) -> str:
    return "ok"


UPGRADE_PLAN = Operation(name="upgrade-plan", words="upgrade plan", description="d", answer=_answer)
UPGRADE_TO = Operation(name="upgrade", words="upgrade to VERSION", options=UpgradeTo, description="d",
                       answer=_answer)
BACKUP_PODS = Operation(name="backup-pods", words="backup pods", options=Backup, description="d", answer=_answer)
# The real upgrade commands give way to these stand-ins, whose flags exercise every kind of value.
TABLE = Registry([*(op for op in operations().values() if not op.name.startswith("upgrade")), UPGRADE_PLAN,
                  UPGRADE_TO, BACKUP_PODS],
                 operations().resources.values())


@pytest.mark.parametrize(("text", "name", "normalised"), [
    ("upgrade plan", "upgrade-plan", "upgrade plan"),
    ("UPGRADE Plan", "upgrade-plan", "upgrade plan"),
    ("upgrade to v1.20.0", "upgrade", "upgrade to v1.20.0"),
    ("upgrade to v1.20.0 --max-unavailable 1", "upgrade", "upgrade to v1.20.0"),  # the default is implied
    ("upgrade --nodes node02,node01,node02 to v1.20.0 --max-unavailable=3", "upgrade",
     "upgrade to v1.20.0 --max-unavailable 3 --nodes node02,node01"),
    ("restore etcd from B-0123ABCD", "restore-etcd", "restore etcd from b-0123abcd"),
    ("backup etcd", "backup-etcd", "backup etcd"),
    ("backup resources", "backup-resources", "backup resources"),
])
def test_phrases_with_keywords_parse_to_their_operation(text, name, normalised):
    command = parse(text, TABLE)
    assert command.verb == name
    assert command.text == normalised
    assert parse(command.text, TABLE) == command


def test_typed_values_land_in_the_options_type_with_their_defaults():
    command = parse("upgrade to v1.21.3 --window 1h30m", TABLE)
    assert command.options == UpgradeTo(version="v1.21.3", window=5400)
    assert command.options.max_unavailable == 1
    assert parse("restore etcd from B-0123ABCD", TABLE).options == RestoreOptions("b-0123abcd")


@pytest.mark.parametrize(("text", "reason", "usage"), [
    ("upgrade", "`upgrade` needs `plan` or `to VERSION`",
     "upgrade plan | upgrade to VERSION [--max-unavailable COUNT] [--nodes NODES] [--window DURATION]"),
    ("upgrade v1.20.0", "`upgrade` needs `plan` or `to VERSION`", None),
    ("upgrade to", "`upgrade to` needs a VERSION", None),
    ("upgrade to 1.20", '"1.20" is not a Kubernetes version: expected vMAJOR.MINOR.PATCH', None),
    ("upgrade to v1.20", '"v1.20" is not a Kubernetes version', None),
    ("upgrade to v1.20.0;reboot", "is not a Kubernetes version", None),
    ("upgrade to v1.20.0 --max-unavailable 0", '--max-unavailable: "0" is not a count', None),
    ("upgrade to v1.20.0 --nodes Node01", '--nodes: "Node01" is not a valid node name', None),
    ("upgrade plan now", '`upgrade plan` does not take "now"', "upgrade plan"),
    ("restore etcd b-0123abcd", '`restore etcd` needs `from` here, not "b-0123abcd"', None),
    ("restore etcd from", "`restore etcd from` needs a BACKUP_ID", None),
    ("restore etcd from j-0123abcd", '"j-0123abcd" is not a valid backup id: backup ids look like b-1a2b3c4d', None),
    ("backup", "`backup` needs `etcd` or `pods` or `resources`", None),
    ("backup pods --pod-selector app=$(id)", "is not a valid pod selector", None),
])
def test_bad_phrases_say_what_to_type(text, reason, usage):
    with pytest.raises(GrammarError) as caught:
        parse(text, TABLE)
    assert reason in caught.value.reason
    if usage is not None:
        assert caught.value.usage == usage


@dataclass(frozen=True, kw_only=True)
class Rolling:
    surge: int = flag(COUNT, default=1)
    legacy_mode: ClassVar[Ignored] = ignored("`--legacy-mode` is gone: every upgrade rolls")


@dataclass(frozen=True, kw_only=True)
class RollTo(Rolling):
    version: str


ROLL = Operation(name="roll", words="roll to VERSION", options=RollTo, description="d", answer=_answer)
ROLLS = Registry([*operations().values(), ROLL], operations().resources.values())


def test_an_ignored_flag_is_inherited_accepted_with_its_note_and_kept_out_of_the_options():
    command = parse("roll --LEGACY-MODE to v1.20.0 --surge 2", ROLLS)
    assert command.notes == ("`--legacy-mode` is gone: every upgrade rolls",)
    assert command.options == RollTo(version="v1.20.0", surge=2)
    assert command.text == "roll to v1.20.0 --surge 2"
    assert asdict(command.options) == {"surge": 2, "version": "v1.20.0"}
    assert Step("roll", "test.roll", {"options": command.options}).args == {"options": asdict(command.options)}
    assert ROLL.usage == "roll to VERSION [--surge COUNT]"
    with pytest.raises(GrammarError, match=r'does not know "--now" \(it takes --surge\)'):
        parse("roll to v1.20.0 --now", ROLLS)


def test_an_ignored_flag_must_be_a_class_attribute_with_a_note():
    @dataclass(frozen=True)
    class AsField:
        legacy_mode: Ignored = ignored("gone")  # noqa: RUF009 (the mistake under test: a field travels in the options)

    with pytest.raises(TypeError, match=r"AsField.legacy_mode is ignored\(\): declare it as `legacy_mode: ClassVar"):
        Operation(name="x", words="x", options=AsField, description="d", answer=_answer)
    with pytest.raises(TypeError, match="needs a note"):
        ignored(" ")


def test_a_declaration_that_does_not_fit_its_options_is_refused_at_import():
    with pytest.raises(TypeError, match="has no field node"):
        Operation(name="x", words="x NODE", description="d", answer=_answer)
    with pytest.raises(TypeError, match="unknown argument HOST"):
        Operation(name="x", words="x HOST", description="d", answer=_answer)

    @dataclass(frozen=True)
    class Loose:
        node: str
        forgotten: bool = False  # neither in the phrase nor a flag()

    with pytest.raises(TypeError, match=r"Loose.forgotten is neither in the phrase nor a flag\(\)"):
        Operation(name="x", words="x NODE", options=Loose, description="d", answer=_answer)
    with pytest.raises(TypeError, match="either answer"):
        Operation(name="x", words="x", description="d")


def test_the_registry_refuses_two_operations_with_one_phrase_or_name():
    twin = Operation(name="twin", words="status", description="d", answer=_answer)
    with pytest.raises(ValueError, match="the same phrase"):
        Registry([*operations().values(), twin], operations().resources.values())
    namesake = Operation(name="status", words="state", description="d", answer=_answer)
    with pytest.raises(ValueError, match="two operations are named 'status'"):
        Registry([*operations().values(), namesake], operations().resources.values())


def test_an_operation_needing_an_undeclared_resource_is_refused():
    needy = Operation(name="needy", words="needy", description="d", needs=("mailer",), answer=_answer)
    with pytest.raises(ValueError, match="needs undeclared resources: mailer"):
        Registry([needy], operations().resources.values())


def test_operations_are_found_by_walking_the_package():
    found = load(["handlers"])
    assert {"help", "status", "cordon", "uncordon", "drain", "jobs", "job", "cancel", "pause", "resume"} <= set(found)
    assert set(found.resources) >= {"kube", "redis"}
    assert found["drain"].usage.startswith("drain NODE [--delete-emptydir-data]")


def test_a_step_gets_its_options_back_as_the_frozen_type_it_declares():
    seen = []

    def act(ctx: StepContext, options: UpgradeTo, count: int) -> str:
        seen.append((options, count))
        return "done"

    step = Step("upgrade", "test.act", {"options": UpgradeTo(version="v1.20.0", nodes=("node01",)), "count": 2})
    assert step.args == {"options": {"version": "v1.20.0", "nodes": ["node01"], "max_unavailable": 1,
                                      "window": None}, "count": 2}  # JSON, as the job stores it
    ctx = StepContext(job_id="j-00000000", step="upgrade", resources={}, log=None,
                      checkpoint_data=CheckpointData({}, lambda values: None), cancelled=lambda: False,
                      progress=lambda detail: None)
    assert invoke(act, ctx, step.args) == "done"
    assert seen == [(UpgradeTo(version="v1.20.0", nodes=("node01",)), 2)]


def test_plans_carry_no_operation_name():
    # The job's verb is the operation's name; a plan is only what it will do.
    assert not hasattr(Plan(()), "verb") and not hasattr(Plan(()), "target")
    assert NoOptions() == NoOptions()
