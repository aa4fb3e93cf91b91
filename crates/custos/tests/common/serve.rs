//! A real `custos serve` child process for the tests that run the binary:
//! started on a free port, ready once it says it is serving, killed when
//! dropped, with an HTTPS client that trusts its generated certificate.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `custos serve`, killed when dropped.
pub struct Serve {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `custos` prepared as `cmd` (its environment and data dir set) with
/// `serve` on a free port, and waits until it prints that it serves. `dir`
/// is the data dir, whose generated certificate the client trusts.
pub fn start(mut cmd: Command, dir: &Path) -> Serve {
    let port = free_port();
    let mut child = cmd
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("is serving") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("custos serve on port {port} did not start");
    }
    let cert = std::fs::read(dir.join("tls").join("cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    Serve {
        child,
        base: format!("https://localhost:{port}"),
        client,
    }
}
