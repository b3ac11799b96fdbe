//! The management listener's accept loops (plain and TLS) and the per-connection HTTP setup.
//!
//! Not `axum::serve`: it gives hyper no timer, so hyper's request-header timeout never runs and
//! a client that trickles its headers, or opens a connection and says nothing, holds a
//! connection and its task forever. Here every HTTP/1 connection has
//! `BrokerConfig::http_header_timeout`: the whole request head must arrive within it, and it
//! also runs while a kept-alive connection waits for its next request, so idle connections
//! close too. Plain connections speak HTTP/1.1 only (browsers never use cleartext HTTP/2, and
//! detecting its preface would mean waiting for bytes with no timeout); TLS connections speak
//! HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise.

use crate::state::AppState;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// How long shutdown waits for in-flight requests before the server returns anyway.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the router on a bound listener until `shutdown` resolves, then lets in-flight
/// requests finish (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    accept_loop(listener, state, shutdown, |sock, peer, conn| async move {
        conn.run(sock, peer, false).await
    })
    .await
}

/// Serves the router over HTTPS on a bound listener until `shutdown` resolves. Each
/// connection's TLS handshake runs on its own task, bounded by the broker's handshake timeout
/// (as on the amqps listener) and logged when it expires; the peer address reaches handlers as
/// `ConnectInfo`, as on the plain listener, so loopback-only users work the same.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let timeout = state.broker.config.handshake_timeout;
    accept_loop(listener, state, shutdown, move |sock, peer, conn| {
        let tls = tls.clone();
        async move {
            let stream = match tokio::time::timeout(timeout, tls.accept(sock)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, listener = "management", error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, listener = "management", ?timeout, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            conn.run(stream, peer, h2).await
        }
    })
    .await
}

/// What a connection task needs: the router, the header timeout and the shutdown watcher.
struct Conn {
    app: axum::Router,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Conn {
    async fn run<I>(self, io: I, peer: SocketAddr, h2: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let svc = tower::ServiceExt::map_request(
            self.app,
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let io = TokioIo::new(io);
        let served = if h2 {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, svc);
            self.watcher.watch(conn).await
        } else {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(self.header_timeout)
                .serve_connection(io, svc);
            self.watcher.watch(conn).await
        };
        if let Err(e) = served {
            if e.is_timeout() {
                tracing::info!(%peer, timeout = ?self.header_timeout, "HTTP request header timed out");
            } else {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
    }
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    handle: F,
) -> std::io::Result<()>
where
    F: Fn(tokio::net::TcpStream, SocketAddr, Conn) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let header_timeout = state.broker.config.http_header_timeout;
    let app = crate::router(state);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (sock, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "management accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = Conn {
            app: app.clone(),
            header_timeout,
            watcher: graceful.watcher(),
        };
        tokio::spawn(handle(sock, peer, conn));
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}
