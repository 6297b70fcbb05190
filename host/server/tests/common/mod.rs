//! Shared set-up of the end-to-end tests: a tiny random model, the real
//! server on an ephemeral loopback port, tenants, and a minimal HTTP/1.1
//! client over a raw socket (so tests can also send what real clients
//! would not: broken bodies, trickled bytes).

#![allow(dead_code)]

use arbor_engine::{Preset, WeightDtype};
use arbor_export::export_random;
use arbor_server::{Quotas, Server, ServerConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn tiny_model() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        export_random(Preset::Tiny, 5, d.path(), WeightDtype::F32).expect("export tiny model");
        d
    })
    .path()
    .to_path_buf()
}

/// The built guest components (examples/build.sh), as the runtime's tests use them.
pub fn guest(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("ARBOR_GUESTS_DIR") {
            return PathBuf::from(dir);
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = repo.join("target/guests");
        let status = Command::new("bash")
            .arg(repo.join("examples/build.sh"))
            .arg(&out)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("run examples/build.sh");
        assert!(status.success(), "examples/build.sh failed");
        out
    });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub const MODEL: &str = "tiny";

pub fn config(data: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(tiny_model(), data.to_path_buf());
    c.model_name = Some(MODEL.into());
    c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.kv_slots = 8192;
    c.threads = 1;
    c.body_timeout = Duration::from_millis(800);
    c.quotas = Quotas {
        max_program_bytes: 4 << 20,
        run_deadline: Duration::from_secs(20),
        ..Quotas::default()
    };
    c
}

/// A server on its own thread and tokio runtime, so a test can stop it
/// gracefully or make it vanish as in a crash (runtime dropped mid-work).
pub struct Harness {
    pub addr: SocketAddr,
    /// The operator's metrics listener, when the config asked for one.
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<std::sync::mpsc::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Harness {
    pub fn start(cfg: ServerConfig) -> Harness {
        let (atx, arx) = std::sync::mpsc::channel();
        let (stx, srx) = std::sync::mpsc::channel::<bool>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = rt.block_on(Server::start(cfg)).expect("server starts");
            atx.send((server.addr(), server.metrics_addr())).unwrap();
            let graceful = srx.recv().unwrap_or(true);
            if graceful {
                rt.block_on(server.shutdown()).expect("graceful shutdown");
            } else {
                // A crash: every task dies where it stands.
                std::mem::forget(server);
                rt.shutdown_background();
            }
        });
        let (addr, metrics_addr) = arx.recv().expect("server address");
        Harness {
            addr,
            metrics_addr,
            stop: Some(stx),
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.finish(true);
    }

    pub fn crash(mut self) {
        self.finish(false);
    }

    fn finish(&mut self, graceful: bool) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(graceful);
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.finish(true);
    }
}

pub fn tenant(data: &Path, name: &str) -> String {
    arbor_server::tenants::create(data, name).expect("create tenant")
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
            .collect()
    }
}

pub fn request_bytes(
    method: &str,
    path: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(k) = key {
        head += &format!("Authorization: Bearer {k}\r\n");
    }
    for (k, v) in extra {
        head += &format!("{k}: {v}\r\n");
    }
    head += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Writes while reading, as a server may answer (413) before it read all.
pub async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&bytes).await;
        w
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), r.read_to_end(&mut raw))
        .await
        .expect("response in time");
    let _ = writer.await;
    if let Err(e) = read {
        assert!(!raw.is_empty(), "read failed before any response: {e}");
    }
    parse_response(&raw)
}

pub async fn read_response(mut s: TcpStream) -> Resp {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let extra: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("Content-Type", "application/json")]
    };
    send_raw(
        addr,
        &request_bytes(method, path, key, extra, body.as_bytes()),
    )
    .await
}

pub async fn post(addr: SocketAddr, path: &str, key: &str, body: Value) -> Resp {
    call(addr, "POST", path, Some(key), Some(body)).await
}

pub async fn get(addr: SocketAddr, path: &str, key: &str) -> Resp {
    call(addr, "GET", path, Some(key), None).await
}

pub async fn upload(addr: SocketAddr, key: &str, wasm: &[u8]) -> Resp {
    send_raw(
        addr,
        &request_bytes(
            "POST",
            "/v1/programs",
            Some(key),
            &[("Content-Type", "application/wasm")],
            wasm,
        ),
    )
    .await
}
