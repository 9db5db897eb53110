"""DVC on object storage: push to and pull from a real local S3-compatible server (moto's server mode).

The same commands work against AWS S3, MinIO or any S3-compatible store; only the remote's url,
endpointurl and credentials change (see README, "Scaling out").
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.conftest import BIN, dvc, free_port, project_copy


@pytest.fixture
def s3_server():
    """moto's S3-compatible server on loopback, with a bucket; yields the endpoint url."""
    import boto3

    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket="driftfit")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_push_and_pull_through_an_s3_remote(tmp_path, s3_server):
    root = project_copy(tmp_path / "project")
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    data = root / "data" / "batch.csv"
    data.write_text("text,label\nthe match went to extra time,sports\nadd salt to the pasta water,food\n")
    original = data.read_bytes()
    for args in (("add", "data/batch.csv"),
                 ("remote", "add", "s3store", "s3://driftfit/dvc"),
                 ("remote", "modify", "s3store", "endpointurl", s3_server),
                 ("push", "-r", "s3store")):
        out = dvc(root, *args, env=env)
        assert out.returncode == 0, f"dvc {' '.join(args)}: {out.stdout[-1500:]} {out.stderr[-1500:]}"

    # A fresh copy without the data or the cache gets it back from the S3 remote.
    data.unlink()
    shutil.rmtree(root / ".dvc" / "cache")
    out = dvc(root, "pull", "-r", "s3store", "data/batch.csv.dvc", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert data.read_bytes() == original
    # Credentials stay out of the repository's config.
    assert "test" not in (root / ".dvc" / "config").read_text().replace("s3://driftfit", "")
