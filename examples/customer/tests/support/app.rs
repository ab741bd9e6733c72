//! Runs the `customer-example` binary as a process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_customer-example");

/// The environment of one application: its database and, optionally, its Redis.
#[derive(Clone, Default)]
pub struct Env {
    pub mongodb_uri: Option<String>,
    pub database: String,
    pub redis_url: Option<String>,
    /// A Redis Cluster's seed nodes, `host:port` comma-separated (`REDIS_CLUSTER_NODES`).
    pub redis_cluster_nodes: Option<String>,
}

impl Env {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("MONGODB_URI")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_NODES")
            .env("MONGODB_DATABASE", &self.database);
        if let Some(uri) = &self.mongodb_uri {
            command.env("MONGODB_URI", uri);
        }
        if let Some(url) = &self.redis_url {
            command.env("REDIS_URL", url);
        }
        if let Some(nodes) = &self.redis_cluster_nodes {
            command.env("REDIS_CLUSTER_NODES", nodes);
        }
        command
    }

    /// Runs a subcommand to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run customer-example")
    }

    /// Starts `serve` on a free port and waits until it listens.
    pub fn serve(&self) -> Server {
        let mut child = self
            .command(&["serve", "--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start customer-example serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed where it listens");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address")
            .to_owned();
        Server { addr, child }
    }
}

pub struct Server {
    pub addr: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
