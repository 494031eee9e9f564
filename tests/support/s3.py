"""A real S3 API on loopback: moto in server mode, as a subprocess (no patching of boto3)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
import httpx
from botocore.config import Config

from bot.documents.s3 import S3Options
from tests.support.servers import free_port, stop_process

ACCESS_KEY_ID = "signbot-test-key"
SECRET_ACCESS_KEY = "signbot-test-secret"  # moto accepts any credentials
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running moto server; ``stop()`` takes it away (for "storage is down" tests)."""

    endpoint_url: str
    proc: subprocess.Popen[bytes]

    @property
    def options(self) -> S3Options:
        return S3Options(
            endpoint_url=self.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The ``Settings`` fields that point signbot at this server."""
        return {
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SECRET_ACCESS_KEY,
        }

    def environment(self, prefix: str) -> dict[str, str]:
        """The ``SIGNBOT_*`` variables that put a ``signbot serve`` on a fresh bucket here,
        its objects under ``prefix``."""
        return {
            "SIGNBOT_STORAGE_URL": f"s3://{self.new_bucket()}/{prefix}",
            "SIGNBOT_S3_ENDPOINT_URL": self.endpoint_url,
            "SIGNBOT_S3_REGION": REGION,
            "SIGNBOT_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "SIGNBOT_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    @cached_property
    def client(self) -> Any:
        """A plain boto3 client, to look into the buckets behind signbot's back."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def new_bucket(self, prefix: str = "signbot") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        stop_process(self.proc)


@contextmanager
def moto_server(timeout: float = 20.0) -> Iterator[S3Server]:
    """``python -m moto.server`` on a free loopback port, answering before this yields."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3Server(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            try:
                httpx.get(f"{server.endpoint_url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"moto server did not answer in {timeout} s") from None
                time.sleep(0.05)
        yield server
    finally:
        server.stop()
