"""What the backup store's tests share about the local S3 server (the fixtures are in tests/s3_fixtures.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from bot.backups.s3 import s3_client

REGION = "eu-west-1"



@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self):
        return s3_client(self.endpoint_url, REGION)

    def new_bucket(self) -> str:
        name = f"backups-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name
