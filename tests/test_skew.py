"""Version parsing and the version-skew policy, rule by rule."""

from __future__ import annotations

import pytest

from bot.domain.skew import NodeVersions, SkewWarning, check_skew
from bot.domain.versions import Version, VersionError, parse_reported_version, parse_version


@pytest.mark.parametrize(
    ("text", "expected"),
    [("v1.20.0", Version(1, 20, 0)), ("v1.33.12", Version(1, 33, 12)), ("v2.0.1", Version(2, 0, 1))],
)
def test_parse_version(text: str, expected: Version) -> None:
    assert parse_version(text) == expected
    assert str(parse_version(text)) == text


@pytest.mark.parametrize(
    "text", ["1.20.0", "v1.20", "v1.20.0.1", "v01.20.0", "V1.20.0", "v1.20.x", "", " v1.20.0", "v1.20.0-rc.1"]
)
def test_parse_version_rejects_anything_else(text: str) -> None:
    expected = r"is not a Kubernetes version: expected vMAJOR\.MINOR\.PATCH, e\.g\. v1\.20\.0"
    with pytest.raises(VersionError, match=expected):
        parse_version(text)


def test_version_ordering_and_labels() -> None:
    assert parse_version("v1.9.0") < parse_version("v1.10.0")
    assert parse_version("v1.20.3").minor_label == "v1.20"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("v1.28.3+k3s1", Version(1, 28, 3)), ("v1.27.4-eks-8ccc7ba", Version(1, 27, 4)), ("v1.30.0", Version(1, 30, 0))],
)
def test_reported_versions_may_carry_a_distribution_suffix(text: str, expected: Version) -> None:
    assert parse_reported_version(text) == expected


@pytest.mark.parametrize("text", ["v1.28.3k3s", "1.28.3", "v1.28.3+", "v1.28.3 ; rm"])
def test_reported_versions_still_need_the_core(text: str) -> None:
    with pytest.raises(VersionError):
        parse_reported_version(text)


def skew(
    apiservers: list[str] | dict[str, str],
    nodes: list[NodeVersions] = (),  # type: ignore[assignment]
    controller_managers: list[str] | dict[str, str] = (),  # type: ignore[assignment]
    schedulers: list[str] | dict[str, str] = (),  # type: ignore[assignment]
    latest: int = 21,
) -> list[str]:
    return [w.message for w in check_skew(apiservers, list(nodes), controller_managers, schedulers, latest)]


def test_a_consistent_cluster_has_no_warnings() -> None:
    nodes = [NodeVersions("controlplane", "v1.21.0", "v1.21.0"), NodeVersions("node01", "v1.19.4", "v1.19.4")]
    assert skew(["v1.21.0"], nodes, ["v1.21.0"], ["v1.20.0"]) == []


# --- kube-apiserver --------------------------------------------------------------------------------

def test_ha_apiservers_within_one_minor_is_fine() -> None:
    assert skew(["v1.21.0", "v1.20.5"]) == []


def test_ha_apiservers_two_minors_apart() -> None:
    assert skew(["v1.21.0", "v1.19.0", "v1.21.1"]) == [
        "kube-apiserver instances run v1.21.1 and v1.19.0: the newest and oldest kube-apiserver must be within "
        "one minor version"
    ]


# --- kube-controller-manager and kube-scheduler -----------------------------------------------------

def test_controller_manager_newer_than_apiserver() -> None:
    assert skew(["v1.20.0"], controller_managers={"cp1": "v1.21.0"}) == [
        "kube-controller-manager on cp1 is v1.21.0, newer than kube-apiserver v1.20.0: "
        "the controller manager must never be newer than the API server"
    ]


def test_scheduler_two_minors_older() -> None:
    assert skew(["v1.21.0"], schedulers=["v1.19.0"]) == [
        "kube-scheduler is v1.19.0, 2 minors older than kube-apiserver v1.21.0: "
        "the scheduler may be at most 1 minor older than the API server"
    ]


def test_control_plane_one_minor_older_and_patch_differences_are_fine() -> None:
    assert skew(["v1.21.0"], controller_managers=["v1.20.9"], schedulers=["v1.21.7"]) == []


def test_several_instances_are_told_apart() -> None:
    messages = skew(["v1.21.0"], schedulers=["v1.21.0", "v1.19.0"])
    assert messages == [
        "kube-scheduler #2 is v1.19.0, 2 minors older than kube-apiserver v1.21.0: "
        "the scheduler may be at most 1 minor older than the API server"
    ]


def test_mid_upgrade_ha_narrows_the_window() -> None:
    # apiservers at 1.21 and 1.20: a 1.21 scheduler is newer than the 1.20 instance.
    assert skew(["v1.21.0", "v1.20.0"], schedulers={"cp2": "v1.21.0"}) == [
        "kube-scheduler on cp2 is v1.21.0, newer than kube-apiserver v1.20.0: "
        "the scheduler must never be newer than the API server"
    ]


# --- kubelet and kube-proxy -------------------------------------------------------------------------

def test_kubelet_newer_than_apiserver() -> None:
    assert skew(["v1.21.0"], [NodeVersions("node01", "v1.22.0")], latest=22) == [
        "kubelet on node01 is v1.22.0, newer than kube-apiserver v1.21.0: "
        "kubelets must never be newer than the API server"
    ]


def test_kube_proxy_newer_than_apiserver() -> None:
    assert skew(["v1.21.0"], [NodeVersions("node01", "v1.21.0", "v1.22.1")], latest=22) == [
        "kube-proxy on node01 is v1.22.1, newer than kube-apiserver v1.21.0: "
        "kube-proxy must never be newer than the API server"
    ]


def test_kubelet_two_minors_older_before_1_25_is_fine() -> None:
    assert skew(["v1.21.0"], [NodeVersions("node01", "v1.19.0", "v1.19.0")]) == []


def test_kubelet_three_minors_older_before_1_25_is_too_old() -> None:
    assert skew(["v1.21.0"], [NodeVersions("node01", "v1.18.0")], latest=21) == [
        "kubelet on node01 is v1.18.0, 3 minors older than kube-apiserver v1.21.0: "
        "kubelets older than v1.25 may be at most 2 minors older than the API server",
        "v1.18.0 is outside the supported Kubernetes minors (v1.19, v1.20, v1.21): kubelet on node01",
    ]


def test_at_1_25_three_minors_are_allowed() -> None:
    # kubelet v1.25 with apiserver v1.28 is three minors apart, which KEP-3935 allows.
    assert skew(["v1.28.0"], [NodeVersions("node01", "v1.25.0", "v1.25.0")], latest=28) == [
        "v1.25.0 is outside the supported Kubernetes minors (v1.26, v1.27, v1.28): kubelet on node01; "
        "kube-proxy on node01"
    ]


def test_just_below_1_25_three_minors_are_not() -> None:
    # The narrower bound follows the kubelet's own version: v1.24 behind v1.27 is too old.
    assert skew(["v1.27.0"], [NodeVersions("node01", "v1.24.0", "v1.24.0")], latest=27)[:2] == [
        "kubelet on node01 is v1.24.0, 3 minors older than kube-apiserver v1.27.0: "
        "kubelets older than v1.25 may be at most 2 minors older than the API server",
        "kube-proxy on node01 is v1.24.0, 3 minors older than kube-apiserver v1.27.0: "
        "kube-proxy older than v1.25 may be at most 2 minors older than the API server",
    ]


def test_four_minors_older_is_too_old_after_1_25() -> None:
    assert skew(["v1.30.0"], [NodeVersions("node01", "v1.26.0")], latest=30)[0] == (
        "kubelet on node01 is v1.26.0, 4 minors older than kube-apiserver v1.30.0: "
        "kubelets may be at most 3 minors older than the API server"
    )


def test_node_window_uses_newest_apiserver_for_age_and_oldest_for_newness() -> None:
    # apiservers 1.30 and 1.29: kubelet 1.30 is too new, kubelet 1.27 (3 behind 1.30) is fine.
    nodes = [NodeVersions("a", "v1.30.0"), NodeVersions("b", "v1.27.0")]
    assert skew(["v1.30.0", "v1.29.0"], nodes, latest=30) == [
        "kubelet on a is v1.30.0, newer than kube-apiserver v1.29.0: kubelets must never be newer than the API server",
        "v1.27.0 is outside the supported Kubernetes minors (v1.28, v1.29, v1.30): kubelet on b",
    ]


def test_missing_kube_proxy_is_not_a_problem() -> None:
    assert skew(["v1.21.0"], [NodeVersions("node01", "v1.21.0", None)]) == []


# --- supported versions ------------------------------------------------------------------------------

def test_the_three_newest_minors_are_supported() -> None:
    nodes = [NodeVersions("a", "v1.33.0"), NodeVersions("b", "v1.32.0"), NodeVersions("c", "v1.31.0")]
    assert skew(["v1.33.0"], nodes, latest=33) == []


def test_an_old_cluster_gets_one_warning_per_version() -> None:
    nodes = [NodeVersions(f"node0{i}", "v1.19.0", "v1.19.0") for i in range(1, 8)]
    warnings = check_skew({"controlplane": "v1.19.0"}, nodes, {"controlplane": "v1.19.0"}, ["v1.19.0"], 33)
    assert warnings == [SkewWarning(
        "kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy",
        "controlplane, kube-scheduler, node01, node02, node03, node04, node05, node06, node07",
        "v1.19.0 is outside the supported Kubernetes minors (v1.31, v1.32, v1.33): kube-apiserver on controlplane; "
        "kube-controller-manager on controlplane; kube-scheduler; kubelet on node01, node02, node03, node04, "
        "node05 and 2 more; kube-proxy on node01, node02, node03, node04, node05 and 2 more",
    )]


def test_a_version_newer_than_the_known_latest() -> None:
    assert skew(["v1.34.1"], latest=33) == [
        "v1.34.1 is newer than the newest release kubemaint knows (v1.33; raise supported_latest_minor if it is "
        "out): kube-apiserver"
    ]


def test_unreadable_versions_become_warnings() -> None:
    warnings = check_skew(["v1.21.0"], [NodeVersions("node01", "unknown")], [], [], 21)
    assert warnings == [SkewWarning(
        "kubelet", "node01",
        'kubelet on node01: "unknown" is not a Kubernetes version: expected vMAJOR.MINOR.PATCH, e.g. v1.20.0; '
        "its skew was not checked",
    )]


def test_no_apiserver_version_still_checks_support() -> None:
    assert skew([], [NodeVersions("node01", "v1.10.0")], latest=21) == [
        "v1.10.0 is outside the supported Kubernetes minors (v1.19, v1.20, v1.21): kubelet on node01"
    ]


def test_how_many_minors_are_supported_is_a_setting() -> None:
    nodes = [NodeVersions("node01", "v1.31.2")]
    assert check_skew(["v1.33.0"], nodes, [], [], 33) == []
    narrow = check_skew(["v1.33.0"], nodes, [], [], 33, supported_minors=2)
    assert [w.message for w in narrow] == [
        "v1.31.2 is outside the supported Kubernetes minors (v1.32, v1.33): kubelet on node01"]
