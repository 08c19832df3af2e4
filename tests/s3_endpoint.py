"""An S3 endpoint on loopback for the tests: moto's server, reached through s3fs as a real one is.

One server per test session. Its address goes where botocore (under s3fs) looks for an
endpoint, AWS_ENDPOINT_URL, with throwaway credentials, so the product code under test
opens `s3://` and `s3a://` URLs exactly as it would against a real object store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

S3_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def bucket(self) -> str:
        """A new, empty bucket; returns its `s3://` URL."""
        import fsspec

        name = f"kr-test-{uuid.uuid4().hex[:12]}"
        fsspec.filesystem("s3").mkdir(name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    before = {name: os.environ.get(name) for name in S3_ENVIRONMENT}
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="kr-test",
                      AWS_SECRET_ACCESS_KEY="kr-test", AWS_DEFAULT_REGION="us-east-1")
    try:
        yield S3Endpoint(f"http://{host}:{port}")
    finally:
        server.stop()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
