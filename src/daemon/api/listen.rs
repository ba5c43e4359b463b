//! The API's accept loop: hyper's HTTP/1 server with the two limits that
//! `axum::serve` lacks, so idle or slow clients cannot take the descriptors the
//! daemon needs for its results database, plan files, stores and drills.
//!
//! - A header timeout: a connection that has not delivered a request header
//!   [`HEADER_TIMEOUT`] after it was accepted (or after its previous answer) is
//!   closed, whether it sent nothing or half a header.
//! - A connection cap, [`max_connections`], from the descriptor limit. When every
//!   slot is taken, a new connection takes the place of the oldest one that has
//!   not sent a request yet, so a flood of idle connections cannot keep
//!   `/healthz` or a trigger waiting; if every connection is serving a request,
//!   the next one waits in the kernel's queue until one ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::backoff::Backoff;
use crate::cancel::Cancel;

/// How long a client has to send a request header. Loopback clients send
/// theirs at once; an idle kept-alive connection is closed after it too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections served at once: a quarter of the soft descriptor limit
/// (256 under the common default of 1024), between 16 and 1024. The other
/// three quarters stay for what drills open.
pub fn max_connections() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is handed.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
    (soft / 4).clamp(16, 1024) as usize
}

/// The open connections, oldest first: whether each has sent a request, and
/// the token that closes it.
#[derive(Default)]
struct Open(Mutex<BTreeMap<u64, (Arc<AtomicBool>, Cancel)>>);

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (Arc<AtomicBool>, Cancel)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the oldest connection that has not sent a request; whether there was one.
    fn close_oldest_silent(&self) -> bool {
        let open = self.lock();
        let silent = open.values().find(|(asked, close)| !asked.load(Ordering::SeqCst) && !close.is_cancelled());
        match silent {
            Some((_, close)) => {
                close.cancel_because("the connection limit is reached and it sent no request");
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `stop` resolves, then lets the requests in
/// progress finish (the caller bounds how long it waits for that).
pub async fn serve(listener: TcpListener, app: Router, stop: impl Future<Output = ()>) {
    let max = max_connections();
    let slots = Arc::new(Semaphore::new(max));
    let open = Arc::new(Open::default());
    let shutdown = Cancel::new();
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let retry = || Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let mut backoff = retry();
    // Said once per episode, not once per connection of a flood.
    let mut told_full = false;
    let mut stop = std::pin::pin!(stop);
    tracing::debug!("API: at most {max} connections, {}s to send a request header", HEADER_TIMEOUT.as_secs());
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = retry();
                    stream
                }
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before it was
                    // accepted: descriptors come back as connections close.
                    let delay = backoff.next_delay();
                    tracing::warn!("API: cannot accept a connection ({e}); trying again in {}ms", delay.as_millis());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = &mut stop => break,
                    }
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                told_full = false;
                p
            }
            Err(_) => {
                let closed = open.close_oldest_silent();
                if !told_full {
                    told_full = true;
                    if closed {
                        tracing::warn!(
                            "API: {max} connections open; closing those that sent no request, oldest first, to serve new ones"
                        );
                    } else {
                        tracing::warn!("API: all {max} connections are serving requests; new ones wait for one to end");
                    }
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut stop => break,
                }
            }
        };
        next_id += 1;
        let (asked, close) = (Arc::new(AtomicBool::new(false)), Cancel::new());
        open.lock().insert(next_id, (asked.clone(), close.clone()));
        let conn =
            Connection { id: next_id, asked, close, shutdown: shutdown.clone(), open: open.clone(), _slot: permit };
        tasks.spawn(conn.serve(stream, app.clone()));
    }
    shutdown.cancel_because("the daemon is stopping");
    while tasks.join_next().await.is_some() {}
}

struct Connection {
    id: u64,
    asked: Arc<AtomicBool>,
    close: Cancel,
    shutdown: Cancel,
    open: Arc<Open>,
    /// Held while the connection is open.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, app: Router) {
        let asked = self.asked.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            asked.store(true, Ordering::SeqCst);
            app.clone().oneshot(req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
        let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
        tokio::select! {
            done = conn.as_mut() => if let Err(e) = done {
                tracing::debug!("API: connection closed: {e}");
            },
            // Dropping the connection closes its socket.
            _ = self.close.cancelled() => {}
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            }
        }
        self.open.lock().remove(&self.id);
    }
}
