//! A TCP proxy between some instances and Redis: passes the bytes, delays them, or blackholes
//! them (accepts connections, forwards nothing, holds what it has read), and can drop every
//! connection. Loopback only and bounded: at most [`MAX_CONNECTIONS`] connections, one 16 KiB
//! buffer per direction (a blackholed peer fills its socket buffers, then waits).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const MAX_CONNECTIONS: usize = 64;
const BUFFER: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Each chunk is forwarded this long after it was read.
    Delay(Duration),
    /// Nothing is forwarded (new connections are still accepted).
    Blackhole,
}

pub struct Proxy {
    pub url: String,
    mode: watch::Sender<Mode>,
    /// Bumped to drop every connection.
    generation: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port in front of `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Pass);
        let (generation, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.subscribe(),
            generation.subscribe(),
        ));
        Proxy {
            url: format!("redis://127.0.0.1:{port}"),
            mode,
            generation,
            accept,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn drop_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    mode: watch::Receiver<Mode>,
    generation: watch::Receiver<u64>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: the client sees a reset
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (open, mode, mut generation) = (open.clone(), mode.clone(), generation.clone());
        generation.mark_unchanged();
        tokio::spawn(async move {
            let server = tokio::time::timeout(
                Duration::from_secs(1),
                TcpStream::connect(("127.0.0.1", upstream)),
            )
            .await;
            if let Ok(Ok(server)) = server {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    pump(client_read, server_write, mode.clone(), generation.clone()),
                    pump(server_read, client_write, mode, generation),
                );
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Waits while blackholed; `false` when the connection is to be dropped.
async fn open(mode: &mut watch::Receiver<Mode>, generation: &mut watch::Receiver<u64>) -> bool {
    loop {
        if *mode.borrow_and_update() != Mode::Blackhole {
            return true;
        }
        tokio::select! {
            changed = mode.changed() => if changed.is_err() { return false },
            _ = generation.changed() => return false,
        }
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    mut generation: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        if !open(&mut mode, &mut generation).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            _ = generation.changed() => return,
        };
        let read_at = tokio::time::Instant::now();
        // Blackholed meanwhile: hold the bytes until it opens.
        if !open(&mut mode, &mut generation).await {
            return;
        }
        let delay = match *mode.borrow() {
            Mode::Delay(d) => Some(d),
            _ => None,
        };
        if let Some(delay) = delay {
            tokio::select! {
                _ = tokio::time::sleep_until(read_at + delay) => {}
                _ = generation.changed() => return,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
