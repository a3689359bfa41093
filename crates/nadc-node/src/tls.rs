//! TLS 1.3 with client certificates required, on rustls (ring provider).
//!
//! The node runs its own accept loop so the TLS policy is ours (TLS 1.3
//! only, client certificate required and verified against the configured
//! CA and CRLs) and handshake failures are logged with the peer address and
//! the reason in plain words. Accepted streams go to tonic, which exposes the
//! verified peer certificate to the services.
//!
//! The configuration lives in a [`NodeTls`], which the accept loop reads at
//! every connection: [`NodeTls::reload`] re-reads the files (CA, CRLs, the
//! node's certificate and key) and swaps the configuration in, so new
//! connections use it while open connections carry on with the one they
//! were accepted under. A reload that fails, or that would change the node's
//! identity, changes nothing.
//!
//! Revocation: with CRLs configured, a certificate listed on its issuer's
//! CRL is refused. Each CRL is checked when loaded: it must be signed by a
//! CA in the bundle (otherwise it could never revoke anything, or would
//! refuse every certificate of its CA). A CA in the bundle without a CRL is
//! not checked for revocation, so adding one CA's CRL does not lock out the
//! certificates of the others (rustls' `allow_unknown_revocation_status`).
//! A CRL past its `nextUpdate` is still enforced (it lists what it lists);
//! the node warns that it is stale. The same CAs and CRLs, and the node's own
//! certificate, make the client configuration the node calls its peers
//! with ([`NodeTls::client`]), so a revoked peer is refused both ways and a
//! reload reaches outgoing connections too.
//!
//! What each CA may issue: with `[trust]` bindings configured, a client or
//! peer certificate whose CA may not issue its principal (a force's CA
//! minting a node, or a user of another force) is refused at the handshake
//! as well, with the reason logged ([`crate::trust`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nadc_core::Principal;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use crate::config::TlsFiles;
use crate::trust::{Bindings, BoundClientVerifier, BoundServerVerifier, TrustConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("read {what} from {path}: {message}")]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A CRL file cannot be read or relied on.
    #[error("read CRL from {path}: {message}")]
    Crl {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The node's certificate names no node, or (on reload) another node.
    #[error("node certificate {path}: {message}")]
    Identity {
        /// The certificate file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(String),
    /// The CA bindings (`[trust]`) do not fit the CA bundle.
    #[error("trust: {0}")]
    Trust(String),
}

/// Installs the ring crypto provider as the process default (idempotent).
/// Mixing providers panics in rustls; nadc uses ring everywhere.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn pem_err(what: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::Pem {
        what,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err("certificates", path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err("certificates", path, e))?;
    if certs.is_empty() {
        return Err(pem_err("certificates", path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err("private key", path, e))
}

/// Reads the CRLs named in `files` and checks each against the CA bundle
/// `cas` (see the module docs).
fn load_crls(
    files: &TlsFiles,
    cas: &[CertificateDer<'static>],
) -> Result<
    (
        Vec<CertificateRevocationListDer<'static>>,
        Vec<nadc_pki::CrlInfo>,
    ),
    TlsError,
> {
    let ca_ders: Vec<&[u8]> = cas.iter().map(|c| c.as_ref()).collect();
    let mut crls = Vec::new();
    let mut infos = Vec::new();
    for path in &files.crl {
        let crl_err = |message: String| TlsError::Crl {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| crl_err(e.to_string()))?;
        for crl in nadc_pki::crls_from_pem(&pem).map_err(|e| crl_err(e.to_string()))? {
            infos.push(nadc_pki::check_crl(&crl, &ca_ders).map_err(|e| crl_err(e.to_string()))?);
            crls.push(crl);
        }
    }
    Ok((crls, infos))
}

/// A server configuration, the matching client configuration for calls to
/// peers, and what went into them.
pub struct Loaded {
    /// The rustls configuration the node serves with.
    pub config: rustls::ServerConfig,
    /// The rustls configuration the node calls its peers with: its own
    /// certificate, peers verified against the same CAs and CRLs.
    pub client: rustls::ClientConfig,
    /// The node's name, from its certificate.
    pub node: String,
    /// The CRLs it enforces.
    pub crls: Vec<nadc_pki::CrlInfo>,
}

/// Reads the node's name from its certificate chain (the leaf's principal
/// must be a node).
pub fn node_name(cert: &Path, chain: &[CertificateDer<'_>]) -> Result<String, TlsError> {
    let ident = |message: String| TlsError::Identity {
        path: cert.display().to_string(),
        message,
    };
    let leaf = chain
        .first()
        .ok_or_else(|| ident("no certificate".into()))?;
    match nadc_pki::principal_from_der(leaf.as_ref()) {
        Ok(Principal::Node { name }) => Ok(name),
        Ok(other) => Err(ident(format!(
            "is a {other} certificate, not a node certificate"
        ))),
        Err(e) => Err(ident(e.to_string())),
    }
}

/// Builds the server configuration from the files: TLS 1.3 only, client
/// certificates required, verified against the CA bundle and the CRLs (and,
/// with `[trust]` bindings, against what each CA may issue), HTTP/2 via ALPN.
pub fn server_config(files: &TlsFiles, trust: &TrustConfig) -> Result<Loaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cas = load_certs(&files.ca)?;
    let mut roots = RootCertStore::empty();
    for c in &cas {
        roots
            .add(c.clone())
            .map_err(|e| pem_err("CA certificate", &files.ca, e))?;
    }
    let roots = Arc::new(roots);
    let bindings = Bindings::resolve(&files.ca, &cas, trust)?;
    let (crls, infos) = load_crls(files, &cas)?;
    let config_err = |e: rustls::Error| {
        TlsError::Config(format!(
            "certificate {} with key {}: {e}",
            files.cert.display(),
            files.key.display()
        ))
    };
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    let mut peer_verifier =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone());
    if !crls.is_empty() {
        verifier = verifier
            .with_crls(crls.clone())
            .allow_unknown_revocation_status();
        peer_verifier = peer_verifier
            .with_crls(crls)
            .allow_unknown_revocation_status();
    }
    let mut verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = verifier
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut peer_verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = peer_verifier
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    if let Some(bindings) = bindings {
        verifier = Arc::new(BoundClientVerifier {
            inner: verifier,
            bindings: bindings.clone(),
        });
        peer_verifier = Arc::new(BoundServerVerifier {
            inner: peer_verifier,
            bindings,
        });
    }
    let chain = load_certs(&files.cert)?;
    let node = node_name(&files.cert, &chain)?;
    let key = load_key(&files.key)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config_err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(peer_verifier)
        .with_client_auth_cert(chain, key)
        .map_err(config_err)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        config: cfg,
        client,
        node,
        crls: infos,
    })
}

/// The node's TLS configuration, swapped whole on reload. The accept loop
/// takes the current one for each new connection.
pub struct NodeTls {
    files: TlsFiles,
    trust: TrustConfig,
    node: String,
    current: RwLock<Current>,
    /// The live client connections, cut when a reload revokes their
    /// certificate.
    connections: Arc<crate::connections::Connections>,
}

/// The configurations in use, swapped together.
struct Current {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("files", &self.files)
            .field("trust", &self.trust)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// What a successful reload loaded.
#[derive(Debug)]
pub struct Reloaded {
    /// The CRLs now enforced.
    pub crls: Vec<nadc_pki::CrlInfo>,
    /// Live connections cut because these CRLs revoke their certificate.
    pub cut: usize,
}

impl NodeTls {
    /// Loads the configuration from the files, with what each CA may issue.
    pub fn load(files: &TlsFiles, trust: &TrustConfig) -> Result<Self, TlsError> {
        let loaded = server_config(files, trust)?;
        log_crls(&loaded.crls);
        Ok(Self {
            files: files.clone(),
            trust: trust.clone(),
            node: loaded.node,
            current: RwLock::new(Current {
                server: Arc::new(loaded.config),
                client: Arc::new(loaded.client),
            }),
            connections: Arc::default(),
        })
    }

    /// The live client connections.
    pub fn connections(&self) -> &Arc<crate::connections::Connections> {
        &self.connections
    }

    /// The node's name, from its certificate.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The configuration new connections are accepted with.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        // A poisoned lock still holds a whole configuration: the swap is
        // one assignment.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .server
            .clone()
    }

    /// The configuration new connections to peers are made with.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .client
            .clone()
    }

    /// Re-reads the files and, if they make a valid configuration for the
    /// same node, uses it for new connections, and cuts the live
    /// connections whose certificate its CRLs revoke. On error nothing
    /// changes.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        let loaded = server_config(&self.files, &self.trust)?;
        if loaded.node != self.node {
            return Err(TlsError::Identity {
                path: self.files.cert.display().to_string(),
                message: format!(
                    "names node {:?}, but this node is {:?}: a node's name cannot change without \
                     a restart (its peers and audit records know it by name)",
                    loaded.node, self.node
                ),
            });
        }
        log_crls(&loaded.crls);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Current {
            server: Arc::new(loaded.config),
            client: Arc::new(loaded.client),
        };
        let cut = self.connections.cut_revoked(&loaded.crls);
        Ok(Reloaded {
            crls: loaded.crls,
            cut,
        })
    }
}

fn log_crls(crls: &[nadc_pki::CrlInfo]) {
    let now = chrono::Utc::now();
    for c in crls {
        info!(issuer = %c.issuer, revoked = c.revoked.len(), "crl loaded");
        if c.is_stale(now) {
            warn!(
                issuer = %c.issuer,
                next_update = ?c.next_update,
                "crl is past its next update: still enforced, but ask its CA for a new one"
            );
        }
    }
}

/// The stream of accepted TLS connections handed to tonic.
pub type Incoming = tokio_stream::wrappers::ReceiverStream<Result<Accepted, std::io::Error>>;

/// An accepted connection: TLS over TCP, cut if its certificate is revoked.
pub type Accepted = crate::connections::Tracked<TlsStream<TcpStream>>;

/// Accepts TCP connections on `listener` and completes TLS handshakes
/// concurrently (`handshake_timeout` each: a client that connects and never
/// completes its handshake is closed) with the configuration current in
/// `tls` at each accept, until `stop` changes.
pub fn accept_loop(
    listener: TcpListener,
    tls: Arc<NodeTls>,
    mut stop: watch::Receiver<bool>,
    handshake_timeout: Duration,
) -> Incoming {
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            let connections = tls.connections().clone();
            tokio::spawn(async move {
                handshake(acceptor, tcp, peer, tx, handshake_timeout, connections).await
            });
        }
        debug!("accept loop stopped");
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Why a handshake failed, in words for the log.
pub fn refusal_reason(e: &std::io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no client certificate presented".into(),
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Revoked => {
                "client certificate revoked (listed on a configured CRL)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("client certificate expired ({c})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("client certificate not yet valid ({c})")
            }
            CertificateError::UnknownIssuer => {
                "client certificate has an unknown issuer (not signed by a CA the node trusts)"
                    .into()
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!("client certificate not usable for client authentication ({c})")
            }
            CertificateError::Other(o) => match o.0.downcast_ref::<crate::trust::Refusal>() {
                Some(refusal) => format!("client certificate refused: {refusal}"),
                None => format!("client certificate refused: {o}"),
            },
            other => format!("client certificate refused: {other}"),
        },
        other => other.to_string(),
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Result<Accepted, std::io::Error>>,
    timeout: Duration,
    connections: Arc<crate::connections::Connections>,
) {
    let accept = acceptor.accept(tcp).into_fallible();
    match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(tls)) => {
            // Client certificates are required: the handshake has one.
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .cloned()
                .unwrap_or_else(|| rustls_pki_types::CertificateDer::from(Vec::new()));
            let _ = tx.send(Ok(connections.track(tls, leaf))).await;
        }
        Ok(Err((e, tcp))) => {
            warn!(peer = %peer, reason = %refusal_reason(&e), "tls handshake refused");
            linger_close(tcp).await;
        }
        Err(_) => warn!(peer = %peer, timeout_ms = timeout.as_millis() as u64,
            "tls handshake not completed in time (limits.handshake_timeout_ms): closed"),
    }
}

/// Closes a refused connection so the client reads the TLS alert saying
/// why: send FIN after the alert, then read what the client already sent
/// (in TLS 1.3 it sends requests before it learns its certificate was
/// refused). Closing with unread data would send a reset instead, which can
/// make the client lose the alert.
async fn linger_close(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}
