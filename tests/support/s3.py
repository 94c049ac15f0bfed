"""moto's S3 server, a real S3-compatible endpoint on a free port, for the tests that write to or
read from s3:// (batch scoring, the payload log's Parquet files)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from .servers import free_port


@contextmanager
def moto_s3(*buckets: str):
    """(a boto3 client, the AWS_* variables a process needs to reach the server), with ``buckets`` made."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield client, env
    finally:
        server.stop()
