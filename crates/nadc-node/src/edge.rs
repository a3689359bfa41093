//! The node's edge toward clients: a refusal's message is bounded.
//!
//! A status message often names what was wrong with a request, and a
//! request field can be megabytes. gRPC carries the message in an HTTP/2
//! header (`grpc-message`), and a header larger than the client accepts
//! breaks the whole response (the client sees a protocol error, not the
//! refusal). [`BoundStatusLayer`] cuts every such header to
//! [`MAX_STATUS_MESSAGE`] bytes, whichever handler built it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;

/// Longest status message sent, bytes (percent-encoded, as on the wire).
pub const MAX_STATUS_MESSAGE: usize = 2048;

/// Bounds the status message of every response.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoundStatusLayer;

impl<S> tower::Layer<S> for BoundStatusLayer {
    type Service = BoundStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BoundStatus { inner }
    }
}

/// [`BoundStatusLayer`]'s service.
#[derive(Clone, Debug)]
pub struct BoundStatus<S> {
    inner: S,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<http::Response<R>, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for BoundStatus<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Answer<R, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut r = answer.await?;
            bound(r.headers_mut());
            Ok(r)
        })
    }
}

/// Cuts a `grpc-message` header over [`MAX_STATUS_MESSAGE`] bytes, on a
/// percent-escape boundary, and says it was cut.
fn bound(headers: &mut http::HeaderMap) {
    let Some(v) = headers.get("grpc-message") else {
        return;
    };
    let bytes = v.as_bytes();
    if bytes.len() <= MAX_STATUS_MESSAGE {
        return;
    }
    let mut end = MAX_STATUS_MESSAGE;
    // Not inside a `%XX` escape.
    if let Some(p) = bytes[end.saturating_sub(2)..end]
        .iter()
        .position(|b| *b == b'%')
    {
        end = end - 2 + p;
    }
    let mut cut = bytes[..end].to_vec();
    cut.extend_from_slice(
        format!("%E2%80%A6 (message cut at {end} of {} bytes)", bytes.len())
            .replace(' ', "%20")
            .as_bytes(),
    );
    if let Ok(v) = http::HeaderValue::from_bytes(&cut) {
        headers.insert("grpc-message", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(message: &str, want_len_at_most: usize, kept_prefix: &str) {
        let mut h = http::HeaderMap::new();
        h.insert(
            "grpc-message",
            http::HeaderValue::from_str(message).unwrap(),
        );
        bound(&mut h);
        let got = h.get("grpc-message").unwrap().to_str().unwrap().to_string();
        assert!(got.len() <= want_len_at_most, "{} bytes", got.len());
        assert!(got.starts_with(kept_prefix), "{got}");
        // Still valid percent-encoding: no escape cut in half.
        let bytes = got.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                assert!(i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit());
            }
        }
    }

    #[test]
    fn long_messages_are_cut_on_an_escape_boundary_and_short_ones_kept() {
        check("short", 5, "short");
        let long = "x".repeat(100_000);
        check(&long, MAX_STATUS_MESSAGE + 64, "xxxx");
        for shift in 0..3 {
            let start = "y".repeat(shift);
            let escaped = format!("{start}{}", "%22".repeat(40_000));
            check(&escaped, MAX_STATUS_MESSAGE + 64, &format!("{start}%22"));
        }
    }
}
