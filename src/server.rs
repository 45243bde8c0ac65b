//! The connection loop of `recloop serve`: HTTP/1.1 over TCP, with what `axum::serve` does not
//! give: a deadline for each request head (it sets no timer, so a client dribbling headers, or
//! sending nothing, holds a connection forever), and the peer's address for rate limiting.
//! Request bodies are bounded by the request timeout of the router (see `api::observe`).
//!
//! HTTP/2 is not offered: detecting it would mean reading a preface with no deadline, and
//! recloop sits behind shops' backends and proxies that speak HTTP/1.1.

use std::{future::Future, net::SocketAddr, pin::pin, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How the connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A connection that has not sent a whole request head this long after it opened (or after
    /// its last answer) is closed.
    pub header_timeout: Duration,
    /// After `shutdown`, how long requests in flight may take before the loop returns anyway.
    pub grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets the
/// requests in flight finish, for at most `options.grace`. Returns whether every connection
/// finished in time.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let connection = graceful
            .watch(builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // A timed-out head or a client that went away ends up here: routine, not news.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tokio::time::timeout(options.grace, graceful.shutdown())
        .await
        .is_ok()
}
