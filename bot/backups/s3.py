"""A backup store in an S3 bucket, or on any S3-compatible server (MinIO, Ceph, ...) given its endpoint URL.

Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
~/.aws, a web identity token, the instance or pod role), never from kubemaint's config file.

Uploads stream the file once through a hashing reader; boto3's transfer manager turns anything above
its threshold into a multipart upload (an object appears only when complete, so a crash leaves the
old object or none), and botocore checksums each request so S3 refuses what was damaged on the way.
Downloads go through the same manager into a temporary file and are kept only if their sha256 is the
one recorded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from bot.backups.store import (
    BackupMissing,
    BackupStoreError,
    ChecksumMismatch,
    HashingReader,
    HashingWriter,
    Location,
    check_key,
)

# boto3's defaults. A hashing reader cannot seek, so the transfer manager buffers the parts it sends at once
# (ten): small parts keep that under 100 MB; 10,000 parts of 8 MiB still allow 80 GB, ten times etcd's limit.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client with the standard credential chain. Path-style addressing for a custom endpoint:
    what S3-compatible servers expect (and an IP address or localhost has no bucket subdomains)."""
    import boto3
    from botocore.config import Config

    style = "path" if endpoint_url else "auto"
    config = Config(s3={"addressing_style": style}, retries={"mode": "standard", "max_attempts": 5},
                    connect_timeout=10, read_timeout=60)
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 client: Any = None, multipart_threshold: int = MULTIPART_THRESHOLD,
                 multipart_chunk: int = MULTIPART_CHUNK) -> None:
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client if client is not None else s3_client(endpoint_url, region)
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunk)

    def _object(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def location_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object(key)}"

    def put(self, local_path: Path, key: str) -> Location:
        name = self._object(key)
        url = self.location_of(key)
        try:
            with open(local_path, "rb") as source:
                reader = HashingReader(source)
                self._client.upload_fileobj(reader, self.bucket, name, Config=self._transfer)
        except OSError as error:
            raise BackupStoreError(f"cannot read {local_path}: {error.strerror or error}") from error
        except Exception as error:
            raise self._error(error, url, "upload to") from error
        stored = self._head(name, url)
        if stored is None or stored.get("ContentLength") != reader.size:
            found = "nothing" if stored is None else f"{stored.get('ContentLength')} bytes"
            raise BackupStoreError(f"{url}: sent {reader.size} bytes but the store has {found}")
        return Location(url, reader.size, reader.sha256)

    def get(self, key: str, local_path: Path, *, expected_sha256: str) -> Location:
        name, url = self._object(key), self.location_of(key)
        local_path = Path(local_path)
        try:
            fd, temporary = tempfile.mkstemp(dir=local_path.parent, prefix=f".{local_path.name}.", suffix=".part")
        except OSError as error:
            raise BackupStoreError(f"cannot write {local_path}: {error.strerror or error}") from error
        try:
            with os.fdopen(fd, "wb") as out:
                writer = HashingWriter(out)
                try:
                    self._client.download_fileobj(self.bucket, name, writer, Config=self._transfer)
                except Exception as error:
                    raise self._error(error, url, "download from") from error
                out.flush()
                os.fsync(out.fileno())
            if writer.sha256 != expected_sha256:
                raise ChecksumMismatch(url, expected_sha256, writer.sha256)
            os.replace(temporary, local_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return Location(url, writer.size, writer.sha256)

    def delete(self, key: str) -> bool:
        name, url = self._object(key), self.location_of(key)
        if self._head(name, url) is None:
            return False
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except Exception as error:
            raise self._error(error, url, "delete") from error
        return True

    def exists(self, key: str) -> bool:
        return self._head(self._object(key), self.location_of(key)) is not None

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            if _status(error) == 404:  # HEAD has no body, so no NoSuchBucket code: the status says it
                raise BackupStoreError(f"cannot reach {self.url}: bucket {self.bucket} does not exist") from error
            raise self._error(error, self.url, "reach") from error

    def _head(self, name: str, url: str) -> dict | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=name)
        except Exception as error:
            if _status(error) == 404:
                return None
            raise self._error(error, url, "read") from error

    def _error(self, error: Exception, url: str, doing: str) -> BackupStoreError:
        """boto's many exceptions as one sentence a person can act on."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(error, BackupStoreError):
            return error
        if isinstance(error, NoCredentialsError):
            return BackupStoreError(f"cannot {doing} {url}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or give the bot a role)")
        if isinstance(error, EndpointConnectionError):
            return BackupStoreError(f"cannot {doing} {url}: cannot connect to {self.endpoint_url or 'S3'}")
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey"):
                return BackupMissing(f"{url}: no such file in the backup store")
            if code == "NoSuchBucket":
                return BackupStoreError(f"cannot {doing} {url}: bucket {self.bucket} does not exist")
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return BackupStoreError(f"cannot {doing} {url}: access denied ({code}): check the credentials and "
                                        "the bucket's policy")
            message = error.response.get("Error", {}).get("Message", "")
            return BackupStoreError(f"cannot {doing} {url}: {code} {message}".rstrip())
        if isinstance(error, BotoCoreError):
            return BackupStoreError(f"cannot {doing} {url}: {error}")
        return BackupStoreError(f"cannot {doing} {url}: {type(error).__name__}: {error}")


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
