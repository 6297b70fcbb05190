"""Starts the real `arbor serve` on an ephemeral loopback port with a tiny
random model, and creates tenants with `arbor tenant create`.

The binary is $ARBOR_BIN, else $CARGO_TARGET_DIR/debug/arbor, else
target/debug/arbor (built by `cargo test --workspace`, or `cargo build -p arbor`).
Guest programs come from $ARBOR_GUESTS_DIR, else target/guests (built by
`examples/build.sh`)."""

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


def guest(name: str) -> bytes:
    """A built guest program's component bytes."""
    d = pathlib.Path(os.environ.get("ARBOR_GUESTS_DIR", REPO / "target" / "guests"))
    path = d / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run examples/build.sh or set ARBOR_GUESTS_DIR")
    return path.read_bytes()


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
        # The server's stderr, kept across restarts, for tests that read it.
        self.log_path = root / "serve.log"

    def tenant(self, name: str) -> str:
        out = subprocess.run([arbor_bin(), "tenant", "create", name, "--data", str(self.data)],
                             check=True, capture_output=True, text=True).stdout
        return out.strip().splitlines()[-1]

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [arbor_bin(), "serve", "--model", str(self.model), "--model-name", MODEL, "--data", str(self.data),
                 "--listen", "127.0.0.1:0", "--threads", "1", *self.extra_args],
                stdout=subprocess.PIPE, stderr=log, text=True)
        for line in self.proc.stdout:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                return self
        raise RuntimeError(f"arbor serve exited with {self.proc.wait()}")

    def log(self) -> str:
        """Everything the server printed on stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self):
        """`kill -9`: the server dies where it stands."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None

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
