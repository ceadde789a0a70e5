//! The HTTP server: hyper's HTTP/1.1 with deadlines for slow clients, so that connections
//! that trickle bytes or sit idle cannot hold the collector's sockets:
//! - a connection waits at most [`HEADER_TIMEOUT`] for a whole request head: from when it
//!   opens, or from the end of the previous response on a kept-alive connection;
//! - a request's body must arrive within [`BODY_TIMEOUT`] (see [`super::router`]).
//!
//! HTTP/2 is not spoken without TLS (browsers do not, and a reverse proxy that terminates TLS
//! talks HTTP/1.1 to its upstream), so there is no unbounded wait for an HTTP/2 preface.
//! The soft limit on open files is raised to the hard one at start, and an accept that fails
//! (out of descriptors) is retried after a moment rather than ending the server.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::Service as _;

/// How long a connection may take to send a whole request head, counted from when the server
/// starts waiting for it (so an idle kept-alive connection is closed after it too).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// From the end of a request's headers to the end of its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in progress
/// finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    raise_open_files_limit();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // wait a moment for sockets to close rather than spin or stop.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            router.call(request.map(Body::new))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after the grace period were cut off");
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: each connection is a descriptor.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open files limit"),
    }
}
