//! The nadc BOF client library: what a force's back office facility (or any
//! Rust BOF software) embeds to push reads and register cameras.
//!
//! - [`connect`]: a gRPC channel over mutually authenticated TLS.
//! - [`format`]: the CSV / NDJSON interchange format, parsed row by row with
//!   line-numbered errors, so a bad row never stops the good ones.
//! - [`push`]: streams batches over `PushStream` with a window of batches
//!   in flight, and collects every batch's acknowledgement.
//! - [`spool`]: a long-running BOF's on-disk spool and its delivery loop,
//!   which retries with backoff and jitter until the node acknowledges.
#![deny(missing_docs, unsafe_code)]

pub mod format;
pub mod push;
pub mod spool;

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub use nadc_proto::pb;

/// Client TLS material: PEM file paths.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The CA the node's certificate must chain to.
    pub ca: PathBuf,
    /// This client's certificate.
    pub cert: PathBuf,
    /// This client's private key.
    pub key: PathBuf,
}

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A local file could not be read.
    #[error("read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The node address is malformed.
    #[error("node address {0:?} is invalid: expected https://HOST:PORT")]
    BadAddress(String),
    /// Connecting (TCP or TLS) failed.
    #[error("connect to {node}: {detail}")]
    Connect {
        /// The node address.
        node: String,
        /// What failed, with its causes.
        detail: String,
    },
    /// The node refused or failed a call. (The status is described in full
    /// by the message, so it is deliberately not also a `source`.)
    #[error("{}", describe_status(.0))]
    Rpc(tonic::Status),
    /// Input data could not be used.
    #[error("{0}")]
    Input(String),
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Rpc(s)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// The message of an error and all its causes, joined by `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// A status with its code, message and any transport causes, worded for a
/// person: TLS refusals say what to check.
pub fn describe_status(s: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", s.code(), s.message());
    if let Some(src) = s.source() {
        let chain = error_chain(src);
        if !text.contains(&chain) {
            text.push_str(": ");
            text.push_str(&chain);
        }
    }
    if let Some(why) = tls_alert_meaning(&text) {
        text.push_str(" (");
        text.push_str(why);
        text.push(')');
        return text;
    }
    let lower = text.to_ascii_lowercase();
    let transport = matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
    );
    let tls_words = [
        "certificate",
        "alert",
        "handshake",
        "broken pipe",
        "connection reset",
        "connection error",
    ];
    if transport && tls_words.iter().any(|w| lower.contains(w)) {
        text.push_str(
            " (the node closed the connection during or after the TLS handshake: check that your \
             client certificate and key are issued by the node's CA and are not expired)",
        );
    }
    text
}

/// Aborts a task when dropped: a call that fails stops its helper tasks
/// (and whatever they feed) instead of leaving them running.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The retry hint a refusal carries (`retry-after-ms`), if any.
pub fn retry_after(status: &tonic::Status) -> Option<Duration> {
    let ms: u64 = status
        .metadata()
        .get(nadc_proto::RETRY_AFTER_MS)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms))
}

/// What a TLS alert from the node means for the client, if `text` (an
/// error chain) holds one. In TLS 1.3 a node that refuses the client's
/// certificate says why in an alert the client reads only after its side of
/// the handshake is done, so it surfaces as the failure of the first call.
pub fn tls_alert_meaning(text: &str) -> Option<&'static str> {
    let (_, alert) = text.split_once("received fatal alert: ")?;
    let alert = alert
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    Some(match alert {
        "CertificateRequired" => {
            "the node requires a client certificate and none was sent: give --cert and --key"
        }
        "CertificateRevoked" => {
            "the node refused your client certificate: it has been revoked, it is on the \
             node's certificate revocation list; ask your CA for a new certificate"
        }
        "CertificateExpired" => {
            "the node refused your client certificate: it has expired or is not yet valid; \
             renew it (or check this machine's clock)"
        }
        "UnknownCA" => {
            "the node refused your client certificate: it is not issued by a CA the node \
             trusts (or its revocation status cannot be checked)"
        }
        "BadCertificate" | "UnsupportedCertificate" => {
            "the node refused your client certificate: it is malformed or not usable for \
             client authentication"
        }
        "CertificateUnknown" => {
            "the node refused your client certificate: its CA may not issue it (the node binds \
             each CA to the kinds of certificate and the forces it may issue; the node's log \
             names the rule), or it is otherwise unacceptable"
        }
        "DecryptError" => {
            "the node could not verify your client certificate: it is not signed by the CA \
             the node trusts under its issuer's name (another CA of the same name?), or your \
             key does not belong to the certificate"
        }
        "HandshakeFailure" | "ProtocolVersion" | "InsufficientSecurity" => {
            "the node and this client share no TLS version or cipher suite (the node requires \
             TLS 1.3)"
        }
        _ => return None,
    })
}

/// Opens a channel to `node` (`https://HOST:PORT`) with mutual TLS.
pub async fn connect(node: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    endpoint(node, tls)?
        .connect()
        .await
        .map_err(|e| connect_error(node, &e))
}

/// A channel to `node` that connects on first use (and reconnects after a
/// failure): for a node's peers, which may be down when it starts.
pub fn connect_lazy(node: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    Ok(endpoint(node, tls)?.connect_lazy())
}

fn connect_error(node: &str, e: &tonic::transport::Error) -> ClientError {
    let mut detail = error_chain(e);
    if let Some(why) = tls_alert_meaning(&detail) {
        detail.push_str(&format!(" ({why})"));
    } else if detail.contains("invalid peer certificate") {
        detail.push_str(" (the node's certificate is not issued by the CA given with --ca, or does not name this host)");
    }
    ClientError::Connect {
        node: node.to_string(),
        detail,
    }
}

fn endpoint(node: &str, tls: &ClientTls) -> Result<tonic::transport::Endpoint, ClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let uri: tonic::transport::Uri = node
        .parse()
        .map_err(|_| ClientError::BadAddress(node.to_string()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(ClientError::BadAddress(node.to_string()));
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read_file(&tls.ca)?))
        .identity(Identity::from_pem(
            read_file(&tls.cert)?,
            read_file(&tls.key)?,
        ))
        .domain_name(host);
    Ok(Channel::builder(uri)
        .tls_config(config)
        .map_err(|e| connect_error(node, &e))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_adaptive_window(true))
}
