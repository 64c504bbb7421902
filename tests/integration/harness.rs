//! Starts the real `vaultplus` binary on a temporary data directory and a
//! free port, and talks HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tempfile::TempDir;

use crate::backend::Backend;

pub const BIN: &str = env!("CARGO_BIN_EXE_vaultplus");

pub struct TestServer {
    child: Child,
    pub base: String,
    /// The `/metrics` URL, when started with --metrics-listen.
    pub metrics: Option<String>,
    /// The ACCOUNT key of the `default` org, printed at first start.
    pub key: String,
    key_printed: Option<String>,
    pub dir: TempDir,
    pub http: reqwest::Client,
    /// The stores it runs on (embedded, or a cluster's database and bucket).
    pub backend: Backend,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), extra).await
    }

    /// Starts on a given (empty) data directory.
    pub async fn start_in(dir: TempDir, extra: &[&str]) -> Self {
        let backend = Backend::fresh().await;
        let mut server = Self::start_on(dir, backend, extra).await;
        server.key = server.key_printed.take().expect("first start prints a key");
        server
    }

    /// Starts a node on the given stores (several nodes may share them; only
    /// the first start of new stores prints a key).
    pub async fn start_on(dir: TempDir, backend: Backend, extra: &[&str]) -> Self {
        Self::start_limited(dir, backend, extra, None).await
    }

    /// Starts a node whose open-file limit (soft and hard) is `nofile`.
    pub async fn start_with_nofile(nofile: u64, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server =
            Self::start_limited(dir, Backend::fresh().await, extra, Some(nofile)).await;
        server.key = server.key_printed.take().expect("first start prints a key");
        server
    }

    async fn start_limited(
        dir: TempDir,
        backend: Backend,
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Self {
        let (child, started) = spawn(dir.path(), &backend.env, extra, nofile);
        let key = started.key;
        let server = TestServer {
            child,
            base: started.base,
            metrics: started.metrics,
            key: key.clone().unwrap_or_default(),
            key_printed: key,
            dir,
            http: reqwest::Client::new(),
            backend,
        };
        server.wait_healthy().await;
        server
    }

    /// Stops the server at once (SIGKILL), as a crashed node.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server (SIGKILL) and starts it again on the same data dir.
    pub async fn restart(&mut self, extra: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.start_again(extra).await;
    }

    /// Sends the server a signal (`TERM`, `INT`, `STOP`, ...).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name}");
    }

    /// The exit status, if the server's process has ended.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("look at the server process")
    }

    /// Waits for the server's process to end.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for the server")
    }

    /// Stops the server cleanly (SIGTERM, as an init system would) and
    /// starts it again on the same data dir.
    pub async fn restart_gracefully(&mut self, extra: &[&str]) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success());
        let status = self.child.wait().expect("server exits");
        assert!(status.success(), "clean stop exits 0, got {status}");
        self.start_again(extra).await;
    }

    /// Starts the server again on the same data dir (after [`Self::kill`]).
    pub async fn start_again(&mut self, extra: &[&str]) {
        let (child, started) = spawn(self.dir.path(), &self.backend.env, extra, None);
        self.child = child;
        self.base = started.base;
        self.metrics = started.metrics;
        self.wait_healthy().await;
    }

    /// Generous: under a full parallel test run on two cores a start can
    /// take many seconds; a bound this wide only catches a server that
    /// never comes up.
    async fn wait_healthy(&self) {
        for _ in 0..1200 {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become healthy");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc")
    }

    /// host:port, for raw sockets.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a CLI subcommand against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("VAULTPLUS_DATA_DIR", self.dir.path())
            .envs(self.backend.env.iter().map(|(k, v)| (k, v)));
        cmd.output().expect("run vaultplus")
    }

    pub fn add_connection(&self, org: &str, id: &str) {
        let out = self.cli(&["connections", "add", "--org", org, id]);
        assert_success(&out);
    }

    pub fn create_key(&self, org: &str, scopes: &[&str]) -> String {
        let mut args = vec!["keys", "create", "--org", org];
        for s in scopes {
            args.push("--scope");
            args.push(s);
        }
        let out = self.cli(&args);
        assert_success(&out);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the default key and no connection header.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("apiKey", &self.key)
    }

    /// A request with the default key and a connection header.
    pub fn conn(&self, method: Method, path: &str, connection: &str) -> RequestBuilder {
        self.req(method, path).header("x-connection-id", connection)
    }

    pub async fn upload(
        &self,
        connection: &str,
        media: &str,
        label: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        self.conn(
            Method::PUT,
            &format!("/v2/vault-plus/media/{media}/variants/{label}"),
            connection,
        )
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
    }

    /// Uploads and asserts the answer was 201 or 200.
    pub async fn put(
        &self,
        connection: &str,
        media: &str,
        label: &str,
        ct: &str,
        bytes: Vec<u8>,
    ) -> Value {
        let r = self.upload(connection, media, label, ct, bytes).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert!(
            status == 201 || status == 200,
            "upload answered {status}: {body}"
        );
        body
    }

    /// Blobs held, as (key, size) sorted: files on disk, or the objects
    /// under the server's S3 prefix.
    pub fn blob_files(&self) -> Vec<(String, u64)> {
        if let Some(blobs) = self.backend.s3_blobs() {
            return blobs;
        }
        let root = self.dir.path().join("blobs");
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// Checks that every variant the catalog records as stored has its
    /// whole blob: present, of the recorded size and SHA-256 (invariant 3;
    /// meant for right after a kill -9, while nothing runs). Answers how
    /// many there are.
    pub async fn assert_stored_blobs_whole(&self) -> usize {
        let row = "blob_key || ' ' || size_bytes || ' ' || checksum";
        let sql = if self.backend.is_cluster() {
            format!("SELECT string_agg({row}, ' ') FROM variants WHERE status = 'stored'")
        } else {
            format!("SELECT group_concat({row}, ' ') FROM variants WHERE status = 'stored'")
        };
        let rows = self.backend.catalog_scalar(self.data_dir(), &sql).await;
        let fields: Vec<&str> = rows.split_whitespace().collect();
        for v in fields.chunks(3) {
            let [key, size, checksum] = v else {
                panic!("a stored variant without key, size or checksum: {v:?}");
            };
            let bytes = match self.backend.s3_blob(key) {
                Some(b) => b,
                None if self.backend.is_cluster() => panic!("stored blob {key} is missing"),
                None => std::fs::read(self.data_dir().join("blobs").join(key))
                    .unwrap_or_else(|e| panic!("stored blob {key} is missing: {e}")),
            };
            assert_eq!(bytes.len().to_string(), *size, "size of stored blob {key}");
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            assert_eq!(digest, *checksum, "checksum of stored blob {key}");
        }
        fields.len() / 3
    }

    /// The blobs held, once there are `n` of them (or after 20 s: the
    /// caller's assertion then shows what is there). Bytes of work cut by a
    /// kill are reclaimed by a server in the background.
    pub async fn wait_blob_count(&self, n: usize) -> Vec<(String, u64)> {
        let mut blobs = self.blob_files();
        for _ in 0..200 {
            if blobs.len() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            blobs = self.blob_files();
        }
        blobs
    }

    /// Runs reclaim to completion through the server's own worker: waits
    /// until the backlog is empty.
    pub async fn wait_reclaimed(&self) {
        // Up to 30 s: on a cluster, deletions claimed by a killed process
        // come back after their claim (10 s).
        for _ in 0..600 {
            let out = self.cli(&["reclaim", "status"]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if out.status.success()
                && text.contains("retired_scopes=0")
                && text.contains("queued_blobs=0")
                && text.contains("unfinished_receipts=0")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("reclaim did not finish");
    }
}

impl TestServer {
    /// Writes in progress in the local blob store's `tmp/` (an object store
    /// shows none: a multipart upload is invisible until complete).
    pub fn tmp_files(&self) -> usize {
        if self.backend.is_cluster() {
            return 0;
        }
        std::fs::read_dir(self.data_dir().join("tmp")).map_or(0, |d| d.count())
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    dir: &Path,
    env: &[(String, String)],
    extra: &[&str],
    nofile: Option<u64>,
) -> (Child, Started) {
    let mut cmd = Command::new(BIN);
    if let Some(n) = nofile {
        use std::os::unix::process::CommandExt;
        // SAFETY: only an async-signal-safe system call between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = rustix::process::Rlimit {
                    current: Some(n),
                    maximum: Some(n),
                };
                rustix::process::setrlimit(rustix::process::Resource::Nofile, lim)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(extra)
        .env("RUST_LOG", "warn")
        // Tests fire requests far faster than any client should; the rate
        // limit tests turn it on with flags (which win over the variable).
        .env("VAULTPLUS_RATE_LIMIT_PER_MINUTE", "0")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vaultplus");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut key = None;
        let mut metrics = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("vpk_") {
                key = Some(line.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("vaultplus metrics on ") {
                metrics = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("vaultplus listening on ") {
                let addr = rest.split_whitespace().next().unwrap().to_owned();
                let _ = tx.send(Started {
                    base: addr,
                    key: key.take(),
                    metrics: metrics.take(),
                });
            }
        }
    });
    let started = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server printed its address");
    (child, started)
}

/// What a starting server printed.
struct Started {
    base: String,
    /// The first start's ACCOUNT key.
    key: Option<String>,
    /// The `/metrics` URL, with --metrics-listen.
    metrics: Option<String>,
}

/// Asserts a CLI run succeeded, showing its stderr when it did not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one SQL statement on a SQLite catalog file behind the server's
/// back (python3's sqlite3, so the test needs no SQLite crate of its own);
/// answers the first column of the first row, if any, as text.
pub fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(sys.argv[2]).fetchone(); c.commit(); print('' if r is None else r[0])",
        ])
        .arg(db)
        .arg(sql)
        .output()
        .expect("run python3");
    assert_success(&out);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Deterministic pseudo-random bytes of a given size.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends a request and returns its JSON body, whatever the status.
pub async fn body(r: RequestBuilder) -> Value {
    r.send().await.unwrap().json().await.unwrap()
}
