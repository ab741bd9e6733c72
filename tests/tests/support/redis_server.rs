//! A real `redis-server` for a test: its own, on a free loopback port with persistence off,
//! or the one `REDIS_URL` names. A test that cannot get one fails, loudly.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub url: String,
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// `REDIS_URL` when set, else a server of the test's own.
    pub fn shared() -> RedisServer {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => RedisServer {
                url,
                port: 0,
                child: None,
            },
            _ => RedisServer::start(),
        }
    }

    /// A server of the test's own (needed to stop and restart it).
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): install it (apt-get install redis-server) or set REDIS_URL"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url.as_str()) {
                if let Ok(mut conn) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (its data is gone: persistence is off).
    pub fn stop(&mut self) {
        assert!(
            self.port != 0,
            "stopping a server needs one of the test's own, not REDIS_URL"
        );
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .expect("connect to redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A namespace no other test uses.
pub fn namespace(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}
