//! A MongoDB-wire server for a test: `MONGODB_URI` when set, else a `secantusd-py` of the
//! test's own on a free loopback port with in-memory storage (installed by `scripts/test`
//! into `.cache/secantus-venv`; `SECANTUSD` may name another binary). A test that cannot get
//! one fails with a message saying how to get one.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct MongoServer {
    pub uri: String,
    child: Option<Child>,
}

fn secantusd() -> PathBuf {
    if let Ok(path) = std::env::var("SECANTUSD") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/secantus-venv/bin/secantusd-py");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("secantusd-py")
}

impl MongoServer {
    pub fn start() -> MongoServer {
        if let Ok(uri) = std::env::var("MONGODB_URI") {
            if !uri.is_empty() {
                return MongoServer { uri, child: None };
            }
        }
        let binary = secantusd();
        let mut child = Command::new(&binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--storage-path",
                ":memory:",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run ./scripts/test (it installs secantusdb==0.7.0b3 \
                     into .cache/secantus-venv), or set MONGODB_URI",
                    binary.display()
                )
            });
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!("{} did not report its port within 30 s", binary.display())
                });
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits.parse::<u16>().expect("a port");
            }
        };
        // It accepts connections shortly after it logs the port.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "secantusd on port {port} does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        MongoServer {
            uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            child: Some(child),
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A database name no other test uses.
pub fn database(test: &str) -> String {
    format!("t{}_{test}", std::process::id())
}
