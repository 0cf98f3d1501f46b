"""What the SSH layer's redactor hides without being told the value (the shapes secrets take), what it
leaves alone, and that it stays fast on the long lines commands print."""

from __future__ import annotations

import time

import pytest

from bot.nodes.command import tail
from bot.nodes.redact import Redactor, Secret

S = "s3cr3tVALUE9"


@pytest.mark.parametrize(("text", "expected"), [
    (f"password: {S}", "password: [redacted]"),
    (f"DB_PASSWORD={S}", "DB_PASSWORD=[redacted]"),
    (f'"client_secret": "{S}"', '"client_secret": [redacted]'),
    (f"  tls.key: {S}", "  tls.key: [redacted]"),
    (f"    client-key-data: {S}", "    client-key-data: [redacted]"),
    (f"kubeadm join 10.0.0.1:6443 --token {S} --certificate-key {S}",
     "kubeadm join 10.0.0.1:6443 --token [redacted] --certificate-key [redacted]"),
    (f"--token={S}", "--token=[redacted]"),
    ("kubeadm token: abcdef.0123456789abcdef", "kubeadm token: [redacted]"),
    ("join with abcdef.0123456789abcdef now", "join with [redacted] now"),
    (f"Authorization: Bearer {S}", "Authorization: Bearer [redacted]"),
    ("xoxb-1234-5678-abcdefgh", "[redacted]"),
    (f"deb https://mirror:{S}@apt.example.com/k8s kubernetes-xenial main",
     "deb https://mirror:[redacted]@apt.example.com/k8s kubernetes-xenial main"),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{S}\n{S}\n-----END RSA PRIVATE KEY-----\nafter",
     "[redacted]\nafter"),
    (f"{S}\n-----END PRIVATE KEY-----\nafter", "[redacted]\nafter"),  # the end of a key, cut by a tail
    (f"before\n-----BEGIN EC PRIVATE KEY-----\n{S}", "before\n[redacted]"),  # its start, cut by a clip
])
def test_secret_shapes_are_hidden(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


@pytest.mark.parametrize("text", [
    "E: Held packages were changed and -y was used without --allow-change-held-packages.",
    "node01 (10.0.0.5:22): unknown host key: the node offered ssh-ed25519 SHA256:abc and known_hosts /k has no key",
    "kubelet set on hold.",
    "-----BEGIN CERTIFICATE-----",  # certificates are public
    "sudo: a password is required",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor()(text) == text


def test_known_values_are_hidden_wherever_they_are() -> None:
    redact = Redactor(["correct horse"])
    redact.add(Secret("battery-staple"))
    redact.add("ab")  # too short to hide without blanking ordinary words
    assert redact("xcorrect horsex battery-staple ab") == "x[redacted]x [redacted] ab"
    assert repr(Secret("battery-staple")) == "Secret('[redacted]')" and "battery" not in str([Secret("battery")])


def test_a_tail_is_redacted_before_it_is_cut() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(f"line{i}{S}" for i in range(40))
    text = key + "\n-----END OPENSSH PRIVATE KEY-----\ndone"
    kept = tail(text, Redactor())
    assert S not in kept and kept == "[redacted]\ndone"


def test_long_lines_take_linear_time() -> None:
    redact = Redactor(["known-value"])
    for text in ("a" * 262_144, "word " * 52_000, "a." * 131_072, "-" * 262_144, "password" * 32_768):
        started = time.monotonic()
        redact(text)
        assert time.monotonic() - started < 1, text[:20]
