//! A real S3-compatible server for tests: moto's `moto_server` on loopback, from a
//! virtual environment made on first use under the target dir
//! (`<target>/pyenv/moto`, `pip install 'moto[server]'`), killed on drop.
//!
//! Buckets and objects are made with plain unsigned HTTP requests (moto does not
//! check signatures by default); the cluster and the client read them through
//! `cairn_client::remote`, signed, with [`MotoServer::s3_env`].
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use cairn_tests::s3::MotoServer;
//! let Some(server) = MotoServer::start()? else { return Ok(()) }; // no python3 -m venv
//! server.create_bucket("data")?;
//! server.put("data", "a.csv", b"x\n1\n")?;
//! cairn_client::remote::configure_s3(server.s3_env())?;
//! # Ok(()) }
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_cli::local_cluster::free_port;

/// Where the moto virtual environment lives: `$CARGO_TARGET_DIR/pyenv/moto`, else
/// `<the target dir of this test binary>/pyenv/moto`.
fn venv_dir() -> anyhow::Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // target/<profile>/deps/<test binary> → target
            let exe = std::env::current_exe()?;
            exe.parent()
                .and_then(|deps| deps.parent())
                .and_then(|profile| profile.parent())
                .context("cannot locate the target dir")?
                .to_path_buf()
        }
    };
    Ok(target.join("pyenv").join("moto"))
}

/// The `moto_server` executable, installing moto on first use. `Ok(None)` when
/// `python3 -m venv` is unavailable (the caller skips); a pip failure is an error.
pub fn moto_server_binary() -> anyhow::Result<Option<PathBuf>> {
    let venv = venv_dir()?;
    let python = venv.join("bin").join("python");
    let server = venv.join("bin").join("moto_server");
    let ready = venv.join(".moto-installed");
    if ready.exists() && server.exists() {
        return Ok(Some(server));
    }
    let started = Instant::now();
    if !python.exists() {
        std::fs::create_dir_all(venv.parent().context("venv dir has no parent")?)?;
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        match made {
            Ok(status) if status.success() => {}
            Ok(status) => {
                let _ = std::fs::remove_dir_all(&venv);
                eprintln!("skipping: `python3 -m venv` failed ({status}); install python3-venv to run this test");
                return Ok(None);
            }
            Err(error) => {
                eprintln!("skipping: cannot run python3 ({error}); install python3 and python3-venv to run this test");
                return Ok(None);
            }
        }
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "moto[server]"])
        .status()
        .context("cannot run pip in the moto virtual environment")?;
    if !status.success() {
        bail!("pip install 'moto[server]' failed ({status}) in {}", venv.display());
    }
    let status = Command::new(&python)
        .args(["-c", "import moto.server"])
        .status()
        .context("cannot run python")?;
    if !status.success() || !server.exists() {
        bail!(
            "moto was installed in {} but `import moto.server` fails or moto_server is missing",
            venv.display()
        );
    }
    std::fs::write(&ready, "")?;
    eprintln!(
        "made the moto virtual environment in {} in {:.1?}",
        venv.display(),
        started.elapsed()
    );
    Ok(Some(server))
}

/// A running `moto_server` on `127.0.0.1`, killed on drop.
pub struct MotoServer {
    child: Child,
    port: u16,
    /// Its log (stdout and stderr).
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    /// Starts moto on a free port and waits until it answers (30 s at most).
    /// `Ok(None)` when `python3 -m venv` is unavailable: the caller skips.
    pub fn start() -> anyhow::Result<Option<MotoServer>> {
        let Some(binary) = moto_server_binary()? else {
            return Ok(None);
        };
        let port = free_port()?;
        let log = tempfile::NamedTempFile::new()?;
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let mut server = MotoServer { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((status, _body)) = server.request("GET", "/", &[]) {
                if status > 0 {
                    return Ok(Some(server));
                }
            }
            if let Some(exit) = server.child.try_wait()? {
                bail!("moto_server exited ({exit}):\n{}", server.log_text());
            }
            if Instant::now() >= deadline {
                bail!("moto_server did not answer within 30 s:\n{}", server.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The S3 configuration that reaches this server, as environment variables:
    /// for the workers' environment and for `cairn_client::remote::configure_s3`.
    pub fn s3_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
    }

    /// Creates `bucket`.
    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let (status, body) = self.request("PUT", &format!("/{bucket}"), &[])?;
        if status != 200 {
            bail!(
                "creating bucket {bucket}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Uploads `bytes` as `bucket/key` (private: reads must be signed).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.upload(bucket, key, bytes, &[])
    }

    /// Uploads `bytes` as `bucket/key`, readable by anyone: a plain `GET` of
    /// `http://127.0.0.1:PORT/bucket/key` (no signature) reads it.
    pub fn put_public(&self, bucket: &str, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.upload(bucket, key, bytes, &[("x-amz-acl", "public-read")])
    }

    fn upload(&self, bucket: &str, key: &str, bytes: &[u8], headers: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut headers = headers.to_vec();
        headers.push(("Content-Type", "application/octet-stream"));
        let (status, body) = self.request_with("PUT", &format!("/{bucket}/{key}"), &headers, bytes)?;
        if status != 200 {
            bail!(
                "uploading {bucket}/{key}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Uploads the file at `path` as `bucket/key`.
    pub fn put_file(&self, bucket: &str, key: &str, path: &Path) -> anyhow::Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        self.put(bucket, key, &bytes)
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// One plain HTTP/1.1 request; the status code and the body.
    fn request(&self, method: &str, target: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request_with(method, target, &[], body)
    }

    /// [`MotoServer::request`] with extra headers.
    fn request_with(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP response: {text:?}"))?;
        let body_start = response
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map_or(response.len(), |at| at + 4);
        Ok((status, response[body_start..].to_vec()))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
