"""An S3 endpoint on loopback for the tests: moto's server, reached through s3fs as a real one is.

One server per test session. Its address goes where botocore (under s3fs) looks for an
endpoint, AWS_ENDPOINT_URL, with throwaway credentials, so the product code under test
opens `s3://` and `s3a://` URLs exactly as it would against a real object store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fsspec.asyn import sync_wrapper
from s3fs import S3FileSystem

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


# ---- a connection that dies: for writes that must be all-or-nothing ---------------------------


class ConnectionLost(OSError):
    pass


WRITES = {"put_object", "complete_multipart_upload", "copy_object"}
CHANGES = WRITES | {"create_multipart_upload", "upload_part", "delete_object", "delete_objects"}


@contextmanager
def connection_lost_after(writes_allowed: int) -> Iterator[None]:
    """S3 as a dying process sees it: after `writes_allowed` objects, nothing more is written or removed.

    Every s3fs request goes through `_call_s3`: the cut is there, below the code under test.
    Leaving the block reconnects.
    """
    state = {"writes": 0, "dead": False}
    real_call = S3FileSystem._call_s3

    async def cut_call(self, method, *args, **kwargs):
        if state["dead"] or (method in CHANGES and state["writes"] == writes_allowed):
            state["dead"] = True
            raise ConnectionLost("connection lost")
        if method in WRITES:
            state["writes"] += 1
        return await real_call(self, method, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(S3FileSystem, "_call_s3", cut_call)
    patch.setattr(S3FileSystem, "call_s3", sync_wrapper(cut_call))  # what S3File's uploads call
    S3FileSystem.clear_instance_cache()  # an instance binds its sync calls when it is made
    try:
        yield
    finally:
        patch.undo()
        S3FileSystem.clear_instance_cache()
