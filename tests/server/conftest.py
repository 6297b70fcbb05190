"""Starts the real `arbor serve` on an ephemeral loopback port with a tiny
random model, and creates tenants with `arbor tenant create`.

The binary is $ARBOR_BIN, else $CARGO_TARGET_DIR/debug/arbor, else
target/debug/arbor (built by `cargo test --workspace`, or `cargo build -p arbor`)."""

import os
import pathlib
import re
import subprocess
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = "tiny"


def arbor_bin() -> str:
    if os.environ.get("ARBOR_BIN"):
        return os.environ["ARBOR_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "arbor"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build -p arbor` or set ARBOR_BIN")
    return str(path)


class Server:
    def __init__(self, extra_args=()):
        self.dir = tempfile.TemporaryDirectory()
        root = pathlib.Path(self.dir.name)
        self.model = root / "model"
        self.data = root / "data"
        subprocess.run([arbor_bin(), "export", "--random", "tiny", "--seed", "3", "--out", str(self.model)],
                       check=True, capture_output=True)
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None

    def tenant(self, name: str) -> str:
        out = subprocess.run([arbor_bin(), "tenant", "create", name, "--data", str(self.data)],
                             check=True, capture_output=True, text=True).stdout
        return out.strip().splitlines()[-1]

    def start(self):
        self.proc = subprocess.Popen(
            [arbor_bin(), "serve", "--model", str(self.model), "--model-name", MODEL, "--data", str(self.data),
             "--listen", "127.0.0.1:0", "--threads", "1", *self.extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                return self
        raise RuntimeError(f"arbor serve exited with {self.proc.wait()}")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.dir.cleanup()


@pytest.fixture(scope="module")
def server():
    s = Server()
    s.keys = [s.tenant("py-a"), s.tenant("py-b")]
    s.start()
    yield s
    s.stop()
