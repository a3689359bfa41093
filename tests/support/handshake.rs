//! A TLS 1.3 handshake with a plain rustls client, to read exactly what a
//! node answers a certificate with (the client library can report the
//! closed connection before the node's alert).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A plain rustls TLS 1.3 client presenting `cert` (with `key`), trusting
/// `ca`, offering HTTP/2.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A TLS 1.3 handshake with a plain rustls client presenting `cert`: the
/// client's address, and the alert the node sent (if it refused).
pub fn handshake(
    addr: SocketAddr,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> (SocketAddr, Option<String>) {
    let config = client_config(ca, cert, key);
    let mut conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let local = tcp.local_addr().unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    // The node verifies the certificate after the client's side is done:
    // send the start of an HTTP/2 preface and read its answer.
    conn.writer()
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    loop {
        while conn.wants_write() {
            conn.write_tls(&mut tcp).unwrap();
        }
        match conn.read_tls(&mut tcp) {
            Ok(0) => return (local, None),
            Ok(_) => {}
            // Served: the node waits for the rest of the conversation.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (local, None),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (local, None),
            Err(e) => panic!("read: {e}"),
        }
        if let Err(e) = conn.process_new_packets() {
            return (local, Some(e.to_string()));
        }
        let mut buf = [0u8; 1024];
        if matches!(conn.reader().read(&mut buf), Ok(n) if n > 0) {
            return (local, None);
        }
    }
}
