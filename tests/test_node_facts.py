"""What a node says about itself, parsed from the real programs' output (pure: no machine)."""

from __future__ import annotations

import subprocess

from bot.nodes.facts import MachineFacts, Pending, facts_script, parse_facts

OUTPUT = """\
@@kubemaint:os
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
@@kubemaint:kernel
5.15.0-100-generic
@@kubemaint:boot
2026-12-01 13:02:11
@@kubemaint:packages
kubeadm 1.32.1-1.1
kubelet 1.32.1-1.1
dpkg-query: no packages found matching kubectl
@@kubemaint:held
kubeadm
kubelet
@@kubemaint:repo
# the Kubernetes repo
deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.32/deb/ /
@@kubemaint:pending
Reading package lists...
Building dependency tree...
Calculating upgrade...
The following packages have been kept back:
  kubeadm kubelet
The following packages will be upgraded:
  libc6 linux-image-generic
2 upgraded, 0 newly installed, 0 to remove and 2 not upgraded.
Inst libc6 [2.35-0ubuntu3.6] (2.35-0ubuntu3.7 Ubuntu:22.04/jammy-updates [amd64])
Conf libc6 (2.35-0ubuntu3.7 Ubuntu:22.04/jammy-updates [amd64])
Inst linux-image-generic [5.15.0.100.97] (5.15.0.101.98 Ubuntu:22.04/jammy-updates [amd64]) []
@@kubemaint:reboot
linux-image-5.15.0-101-generic
libc6
REQUIRED
"""


def test_every_part_is_read():
    facts = parse_facts(OUTPUT)
    assert facts == MachineFacts(
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-100-generic", booted="2026-12-01 13:02:11",
        packages={"kubeadm": "1.32.1-1.1", "kubelet": "1.32.1-1.1"}, held=frozenset({"kubeadm", "kubelet"}),
        repo="v1.32",
        pending=(Pending("libc6", "2.35-0ubuntu3.6", "2.35-0ubuntu3.7"),
                 Pending("linux-image-generic", "5.15.0.100.97", "5.15.0.101.98")),
        kept_back=("kubeadm", "kubelet"), reboot_required=True,
        reboot_packages=("linux-image-5.15.0-101-generic", "libc6"))


def test_the_legacy_repo_and_a_node_with_nothing_pending():
    output = ("@@kubemaint:repo\ndeb https://apt.kubernetes.io/ kubernetes-xenial main\n"
              "@@kubemaint:pending\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
              "@@kubemaint:reboot\n")
    facts = parse_facts(output)
    assert facts.repo == "legacy apt.kubernetes.io"
    assert facts.pending == () and not facts.reboot_required and facts.os_image == "unknown"


def test_the_script_runs_on_a_real_debian_and_reads_this_machine():
    """The commands are real ones: run here, they describe this host."""
    result = subprocess.run(facts_script(), capture_output=True, text=True, timeout=60)
    facts = parse_facts(result.stdout)
    assert facts.os_image.startswith("Debian GNU/Linux")
    assert facts.kernel == subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert facts.booted[:4].isdigit()
    assert all(isinstance(p, Pending) for p in facts.pending)
