"""A real S3-compatible server for tests: moto on 127.0.0.1 with one bucket (test double: tests only)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def moto_bucket(bucket: str) -> Iterator[str]:
    """The endpoint URL of a fresh server holding ``bucket``; test credentials in the environment meanwhile."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    old = {k: os.environ.get(k) for k in KEYS}
    os.environ.update(KEYS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def storage_for(endpoint: str):
    """mfr's Storage reaching the server, configured as a user would (Spark's fs.s3a.* settings)."""
    from mfr.config import load_config
    from mfr.storage import Storage

    conf = {"spark.hadoop.fs.s3a.endpoint": endpoint, "spark.hadoop.fs.s3a.path.style.access": "true"}
    return Storage.from_config(load_config(overrides=[f"spark.conf={json.dumps(conf)}"]))
