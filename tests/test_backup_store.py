"""The backup stores keep files whole and say when one is not what was stored: the same behaviour from a
local directory and from an S3 bucket (moto's server, over HTTP, as a user's bucket would be reached)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from bot.backups import BackupMissing, BackupStore, BackupStoreError, ChecksumMismatch, LocalStore, S3Store
from tests.s3_support import REGION, S3Server

pytest_plugins = ["tests.s3_fixtures"]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BackupStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server: S3Server = request.getfixturevalue("s3_server")
    return S3Store(server.new_bucket(), "kubemaint/", endpoint_url=server.endpoint_url, region=REGION)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".part"))


def test_a_file_comes_back_as_it_went_in_with_its_size_and_sha256(store: BackupStore, tmp_path: Path):
    data = os.urandom(300_000)
    location = store.put(write(tmp_path / "snapshot.db", data), "prod/etcd/b-00000001.db")
    assert location.size == len(data) and location.sha256 == hashlib.sha256(data).hexdigest()
    assert location.url == store.location_of("prod/etcd/b-00000001.db")
    assert location.url.startswith(store.url) and location.url.endswith("/prod/etcd/b-00000001.db")
    assert store.exists("prod/etcd/b-00000001.db")

    back = store.get("prod/etcd/b-00000001.db", tmp_path / "restored.db", expected_sha256=location.sha256)
    assert (tmp_path / "restored.db").read_bytes() == data and back == location
    assert leftovers(tmp_path) == []


def test_putting_a_key_again_replaces_the_file(store: BackupStore, tmp_path: Path):
    store.put(write(tmp_path / "a", b"first"), "c/etcd/b-00000002.db")
    second = store.put(write(tmp_path / "b", b"second"), "c/etcd/b-00000002.db")
    store.get("c/etcd/b-00000002.db", tmp_path / "out", expected_sha256=second.sha256)
    assert (tmp_path / "out").read_bytes() == b"second"


def test_a_changed_file_is_refused_and_the_target_is_left_as_it_was(store: BackupStore, tmp_path: Path):
    stored = store.put(write(tmp_path / "snapshot.db", b"etcd snapshot"), "c/etcd/b-00000003.db")
    target = write(tmp_path / "restored.db", b"what was here before")
    recorded = hashlib.sha256(b"what the catalog recorded").hexdigest()
    with pytest.raises(ChecksumMismatch) as refused:
        store.get("c/etcd/b-00000003.db", target, expected_sha256=recorded)
    assert refused.value.expected == recorded and refused.value.actual == stored.sha256
    assert "changed or damaged" in str(refused.value) and stored.url in str(refused.value)
    assert target.read_bytes() == b"what was here before"
    assert leftovers(tmp_path) == []


def test_a_missing_file_is_said_so_and_deleting_it_twice_is_fine(store: BackupStore, tmp_path: Path):
    with pytest.raises(BackupMissing, match="no such file in the backup store"):
        store.get("c/etcd/b-00000004.db", tmp_path / "out", expected_sha256="0" * 64)
    assert not (tmp_path / "out").exists()
    store.put(write(tmp_path / "f", b"x"), "c/etcd/b-00000004.db")
    assert store.delete("c/etcd/b-00000004.db") is True
    assert store.delete("c/etcd/b-00000004.db") is False
    assert not store.exists("c/etcd/b-00000004.db")


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a//b", "a/../../b", "", "a/.hidden", "a b"])
def test_a_key_that_could_name_a_file_outside_the_store_is_refused(store: BackupStore, tmp_path: Path, key: str):
    with pytest.raises(ValueError, match="bad backup key"):
        store.put(write(tmp_path / "f", b"x"), key)
    assert not (tmp_path / "outside").exists()


def test_the_local_store_writes_under_its_directory_only(tmp_path: Path):
    store = LocalStore(tmp_path / "backups")
    store.put(write(tmp_path / "f", b"snapshot"), "prod/etcd/b-00000005.db")
    assert (tmp_path / "backups" / "prod" / "etcd" / "b-00000005.db").read_bytes() == b"snapshot"
    assert store.location_of("prod/etcd/b-00000005.db") == (tmp_path / "backups/prod/etcd/b-00000005.db").as_uri()
    assert leftovers(tmp_path / "backups" / "prod" / "etcd") == []


def test_an_unwritable_local_directory_is_reported_with_its_path(tmp_path: Path):
    blocker = write(tmp_path / "not-a-directory", b"")
    store = LocalStore(blocker / "backups")
    with pytest.raises(BackupStoreError, match="not-a-directory"):
        store.check()
    with pytest.raises(BackupStoreError, match="cannot write"):
        store.put(write(tmp_path / "f", b"x"), "c/etcd/b-00000006.db")


def test_a_large_file_goes_to_s3_in_parts_under_the_prefix(s3_server: S3Server, tmp_path: Path):
    bucket = s3_server.new_bucket()
    store = S3Store(bucket, "team/kubemaint", endpoint_url=s3_server.endpoint_url, region=REGION,
                    multipart_threshold=5 * 1024 * 1024, multipart_chunk=5 * 1024 * 1024)  # S3's smallest part
    data = os.urandom(12 * 1024 * 1024 + 17)
    location = store.put(write(tmp_path / "big.db", data), "prod/etcd/b-00000007.db")
    assert location.url == f"s3://{bucket}/team/kubemaint/prod/etcd/b-00000007.db"
    head = s3_server.client().head_object(Bucket=bucket, Key="team/kubemaint/prod/etcd/b-00000007.db")
    assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-3")  # three parts
    store.get("prod/etcd/b-00000007.db", tmp_path / "back.db", expected_sha256=hashlib.sha256(data).hexdigest())
    assert (tmp_path / "back.db").read_bytes() == data


def test_s3_problems_are_said_in_words(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = S3Store("no-such-bucket", endpoint_url=s3_server.endpoint_url, region=REGION)
    with pytest.raises(BackupStoreError, match="bucket no-such-bucket does not exist"):
        missing.check()
    with pytest.raises(BackupStoreError, match="bucket no-such-bucket does not exist"):
        missing.put(write(tmp_path / "f", b"x"), "c/etcd/b-00000008.db")

    bucket = s3_server.new_bucket()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    anonymous = S3Store(bucket, endpoint_url=s3_server.endpoint_url, region=REGION)
    with pytest.raises(BackupStoreError, match="no AWS credentials found"):
        anonymous.put(write(tmp_path / "f", b"x"), "c/etcd/b-00000008.db")


def test_an_unreachable_endpoint_is_named(aws_environment: None, tmp_path: Path):
    import boto3
    from botocore.config import Config

    from lab.redis_server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=REGION,
                                            config=Config(retries={"max_attempts": 1}))  # no backoff to wait out
    store = S3Store("backups", endpoint_url=endpoint, client=client)
    with pytest.raises(BackupStoreError, match=re.escape(f"cannot connect to {endpoint}")):
        store.put(write(tmp_path / "f", b"x"), "c/etcd/b-00000009.db")
