//! The node's live client connections, so that revoking a certificate
//! ends the connections it already has, not only new ones.
//!
//! The TLS handshake checks a client certificate against the CRLs once,
//! when it connects. A reload that brings a CRL listing that certificate
//! (`RunningNode::reload_tls`, SIGHUP) therefore also cuts every live
//! connection made with it: its streams (a search, an alert watch, a push
//! stream) end at once with a connection error, and it cannot reconnect.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tracing::warn;

/// Every live connection's client certificate, and the switch that cuts it.
#[derive(Default)]
pub struct Connections {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
}

struct Live {
    leaf: CertificateDer<'static>,
    cut: watch::Sender<bool>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("live", &self.count())
            .finish()
    }
}

impl Connections {
    /// Wraps an accepted connection made with client certificate `leaf`,
    /// so that [`cut_revoked`](Self::cut_revoked) can end it.
    pub fn track<S>(self: &Arc<Self>, inner: S, leaf: CertificateDer<'static>) -> Tracked<S> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (cut, mut rx) = watch::channel(false);
        self.lock().insert(id, Live { leaf, cut });
        Tracked {
            inner,
            cut: Box::pin(async move {
                // Ends when cut (or when the registry lets go, which it
                // does only once the connection is dropped).
                let _ = rx.wait_for(|c| *c).await;
            }),
            id,
            connections: self.clone(),
        }
    }

    /// Cuts every live connection whose certificate one of `crls`
    /// revokes; how many were cut.
    pub fn cut_revoked(&self, crls: &[nadc_pki::CrlInfo]) -> usize {
        let live = self.lock();
        let mut n = 0;
        for l in live.values() {
            if crls.iter().any(|c| c.revokes(l.leaf.as_ref())) {
                let _ = l.cut.send(true);
                n += 1;
            }
        }
        if n > 0 {
            warn!(
                connections = n,
                "connections of newly revoked certificates cut"
            );
        }
        n
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection that fails every read and write once cut.
pub struct Tracked<S> {
    inner: S,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    id: u64,
    connections: Arc<Connections>,
}

impl<S> Tracked<S> {
    /// Ready with an error once the connection has been cut.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client certificate was revoked",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Poll::Ready(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Tracked<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
