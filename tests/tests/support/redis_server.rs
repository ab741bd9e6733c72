//! A real `redis-server` for a test: its own, on a free loopback port with persistence off,
//! or the one `REDIS_URL` names. A test that cannot get one fails, loudly.
//!
//! A server of the test's own can also be frozen (`SIGSTOP`), thawed, killed, restarted empty,
//! or restarted from a snapshot the test took earlier (`SAVE`), as a crash would leave it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub url: String,
    port: u16,
    child: Option<Child>,
    /// Where a snapshot is written and read back (a fresh directory per server).
    dir: Option<PathBuf>,
    /// Extra `redis-server` arguments, kept across restarts.
    extra: Vec<String>,
}

pub fn free_port() -> u16 {
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
                dir: None,
                extra: Vec::new(),
            },
            _ => RedisServer::start(),
        }
    }

    /// A server of the test's own (needed to stop and restart it).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server of the test's own with extra `redis-server` arguments (e.g.
    /// `["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]`), kept across restarts.
    /// It has a data directory of its own, so that [`save`](Self::save) and
    /// [`crash_and_restore`](Self::crash_and_restore) work.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "cache-tests-redis-{}-{port}-{}",
            std::process::id(),
            fastrand_u64()
        ));
        std::fs::create_dir_all(&dir).expect("create a data directory for redis-server");
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child: None,
            dir: Some(dir),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.launch();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn launch(&mut self) {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(dir) = &self.dir {
            command.arg("--dir").arg(dir);
        }
        command.args(&self.extra);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): \
                     install it (apt-get install redis-server) or set REDIS_URL"
                )
            });
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

    fn own(&self, what: &str) {
        assert!(
            self.port != 0,
            "{what} needs a server of the test's own, not REDIS_URL"
        );
    }

    /// Stops the server (its data is gone: persistence is off, and any snapshot is removed).
    pub fn stop(&mut self) {
        self.own("stopping a server");
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(dir.join("dump.rdb"));
        }
    }

    /// Kills the server at once (`SIGKILL`), as a crash would; a snapshot stays on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Writes a snapshot of the data now (`SAVE`), for [`crash_and_restore`](Self::crash_and_restore).
    pub fn save(&self) {
        self.own("a snapshot");
        let _: String = redis::cmd("SAVE").query(&mut self.connection()).unwrap();
    }

    /// Kills the server and starts it again from the last snapshot: everything written after
    /// [`save`](Self::save) is lost, as after a crash of a server persisted with RDB.
    pub fn crash_and_restore(&mut self) {
        self.own("a restore");
        self.kill();
        self.launch();
    }

    fn signal(&self, signal: &str) {
        self.own("freezing a server");
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen server (`SIGCONT`).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// `CONFIG SET name value`.
    pub fn config_set(&self, name: &str, value: &str) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(&mut self.connection())
            .unwrap();
    }

    /// One field of `INFO` (e.g. `evicted_keys`).
    pub fn info_field(&self, field: &str) -> Option<String> {
        let info: String = redis::cmd("INFO").query(&mut self.connection()).unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    }

    /// Every key matching `pattern` (`SCAN MATCH`, never `KEYS`), sorted.
    pub fn scan(&self, pattern: &str) -> Vec<String> {
        scan_keys(&mut self.connection(), pattern)
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .expect("connect to redis")
    }
}

/// Every key of the server behind `conn` matching `pattern` (`SCAN MATCH`, never `KEYS`),
/// sorted.
pub fn scan_keys(conn: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .unwrap();
        out.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
    hasher.finish()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen server does not die of SIGKILL until continued on some systems.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A namespace no other test uses.
pub fn namespace(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}
