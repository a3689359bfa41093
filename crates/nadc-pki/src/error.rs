//! The crate's error type.

use std::path::PathBuf;

use nadc_core::IdentityError;

/// Why a certificate was refused or could not be issued or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The bytes are not a parsable X.509 certificate (or PEM holding one).
    #[error("cannot parse certificate: {0}")]
    BadCertificate(String),

    /// The certificate has no `nadc://node/...`, `nadc://bof/...` or
    /// `nadc://user/...` URI in its subjectAltName.
    #[error(
        "certificate has no nadc principal URI in its subjectAltName: expected exactly one of \
         nadc://node/<name>, nadc://bof/<FORCE> or nadc://user/<FORCE>/<name>"
    )]
    NoPrincipal,

    /// The certificate has more than one principal URI.
    #[error(
        "certificate has {} nadc principal URIs ({}): exactly one is allowed",
        .0.len(),
        .0.join(", ")
    )]
    MultiplePrincipals(Vec<String>),

    /// A `nadc:` URI that is not one of the forms of the scheme.
    #[error("malformed nadc URI {uri:?}: {reason}")]
    MalformedUri {
        /// The URI as found in the certificate.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A `nadc:` URI of the right form holding an invalid force code, name or role.
    #[error("invalid nadc URI {uri:?}: {source}")]
    BadUriIdentity {
        /// The URI as found in the certificate.
        uri: String,
        /// The invalid part.
        source: IdentityError,
    },

    /// Role URIs on a certificate that is not a user's.
    #[error(
        "role URIs ({}) are only allowed on user certificates, not on the certificate of {principal}",
        roles.join(", ")
    )]
    RolesOnNonUser {
        /// The certificate's principal, described (e.g. `bof AVON`).
        principal: String,
        /// The role URIs found.
        roles: Vec<String>,
    },

    /// The same role appears more than once.
    #[error("role {0:?} is given more than once")]
    DuplicateRole(String),

    /// An invalid force code, name or role given when issuing.
    #[error(transparent)]
    Identity(#[from] IdentityError),

    /// An invalid DNS name given for a node certificate.
    #[error("invalid DNS name {0:?}: use dot-separated labels of a-z, A-Z, 0-9 and '-'")]
    BadDnsName(String),

    /// DNS names or IP addresses asked for on a certificate that is not a node's.
    #[error("DNS names and IP addresses are only allowed on node certificates, not for {0}")]
    SanOnNonNode(String),

    /// A validity period that is empty, reversed or out of range.
    #[error("invalid validity period: {0}")]
    BadValidity(String),

    /// A user spec that is not `NAME:ROLE[+ROLE...]:FORCE`.
    #[error(
        "invalid user spec {spec:?}: {reason} (expected NAME:ROLE[+ROLE...]:FORCE, e.g. alice:analyst:AVON)"
    )]
    BadUserSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The certificate and key given cannot be used as a CA.
    #[error("not a usable CA: {0}")]
    BadCa(String),

    /// Key generation, signing or encoding failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),

    /// The same node, force or user appears twice in an [`InitSpec`](crate::InitSpec).
    #[error("{what} {name:?} is listed more than once")]
    DuplicateInSpec {
        /// `node`, `force` or `user`.
        what: &'static str,
        /// The repeated name.
        name: String,
    },

    /// [`init`](crate::init) found an existing CA key and was not told to overwrite it.
    #[error(
        "{} already exists: refusing to overwrite an existing CA key (ask for overwrite explicitly to replace the whole PKI)",
        .0.display()
    )]
    AlreadyExists(PathBuf),

    /// A certificate serial number that cannot be read.
    #[error("invalid certificate serial {serial:?}: {reason}")]
    BadSerial {
        /// The serial as given.
        serial: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A CRL that cannot be read, or cannot be relied on.
    #[error("unusable CRL: {0}")]
    BadCrl(String),

    /// A line of `revoked.txt` that cannot be read.
    #[error("{}, line {line}: {reason}", path.display())]
    BadRevokedList {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// Asked to revoke a certificate this CA did not issue (its CRL could not
    /// revoke it).
    #[error(
        "{} was not issued by this CA, so this CA's CRL cannot revoke it (revoke it at the CA that issued it)",
        .0.display()
    )]
    NotIssuedByCa(PathBuf),

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generate(e.to_string())
    }
}
