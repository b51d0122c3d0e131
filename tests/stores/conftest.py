"""An S3 server on loopback (moto's server mode) and the environment that points s3fs at it."""
import pytest

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'pytest-trt[remote]')")
pytest.importorskip("moto.server", reason="moto's server is not installed (pip install 'moto[server]')")


class S3:
    """A running moto S3 server: ``url`` (http endpoint), ``env`` (for subprocesses), ``fs`` (an s3fs client)."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        import urllib.request

        # moto keeps its buckets per process, across servers: start each test from an empty store
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")).close()
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": self.url}
        import s3fs

        self.fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=self.url,
                                    use_listings_cache=False, skip_instance_cache=True)
        self.fs.mkdir("engines")
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.stop()


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A fresh server with bucket ``engines``; this process's s3fs clients and the remote cache's per-process
    state point at it (fsspec configuration: endpoint_url), local copies under tmp_path/local."""
    from fsspec.config import conf

    from pytest_trt.stores import remote

    server = S3()
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(conf, "s3", {"endpoint_url": server.url})
    monkeypatch.setenv(remote.LOCAL_DIR_ENV, str(tmp_path / "local"))
    monkeypatch.delenv(remote.SECRET_ENV, raising=False)
    monkeypatch.setattr(remote, "_OFFLINE", {})
    monkeypatch.setattr(remote, "_CONDITIONAL", {})
    monkeypatch.setattr(remote, "_SAID", set())
    yield server
    server.stop()
