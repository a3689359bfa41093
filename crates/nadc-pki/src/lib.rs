//! Certificates and the identities read from them.
//!
//! Every party that talks to a nadc node (another node, a force's back office
//! facility (BOF), or a person) does so over mutually authenticated TLS. The
//! node's TLS layer checks the certificate chain. This crate then reads *who*
//! the party is from the verified certificate ([`principal_from_der`]). It also
//! runs a small development CA ([`DevCa`], [`init`]) that issues certificates
//! following the same scheme.
//!
//! # Identity scheme
//!
//! Every certificate nadc accepts carries **exactly one principal URI** in its
//! subjectAltName (SAN), and role URIs only if it is a user certificate:
//!
//! | principal | SAN URIs | extended key usage |
//! |-----------|----------|--------------------|
//! | node      | `nadc://node/<name>` (plus DNS names and IP addresses) | serverAuth, clientAuth |
//! | force BOF | `nadc://bof/<FORCE>` | clientAuth |
//! | user      | `nadc://user/<FORCE>/<name>` plus one `nadc://role/<role>` per role | clientAuth |
//!
//! * `<FORCE>` is a force code as in [`ForceId`], written in upper case
//!   (`AVON`, `WEST_MIDS`).
//! * `<name>` is 1 to 64 characters of `a-z A-Z 0-9 . _ -`
//!   ([`nadc_core::identity::validate_name`]).
//! * `<role>` is one of the names in [`Role::ALL_NAMES`], in lower case. A
//!   user's roles are kept in the order their URIs appear in the certificate.
//!
//! Any SAN URI whose scheme is `nadc:` (in any letter case) must be one of the
//! forms above, written exactly. URIs with other schemes are ignored. A
//! certificate is refused, with an error naming the problem, if it has no
//! principal URI, more than one, a malformed or unknown `nadc:` URI, a bad force
//! code, name or role, the same role twice, or role URIs on a node or BOF
//! certificate.
//!
//! The subject common name (CN) is for people (`AVON BOF`, `alice (AVON)`,
//! `nadc node national-1`) and is **never** used for authorisation.
//!
//! `deploy/PKI.md` describes the scheme for forces that issue certificates from
//! their own CA, with `openssl` examples.
//!
//! # Development PKI
//!
//! [`init`] writes a complete development PKI (CA, node, BOF and user
//! certificates) in the layout described by [`PkiLayout`]. Keys are ECDSA
//! P-256. Private keys are written as PKCS#8 PEM with mode 0600 on unix.
//!
//! # Revocation
//!
//! [`PkiLayout::revoke_cert_file`] and [`PkiLayout::revoke_serial`] record a
//! revoked certificate in `revoked.txt` and write the CA's CRL (`crl.pem`)
//! listing every certificate revoked so far. A node configured with the CRL
//! refuses those certificates at the TLS handshake. [`check_crl`] is what a
//! node runs on a CRL before relying on it.

#![deny(missing_docs)]

mod ca;
mod crl;
mod error;
mod layout;
mod spec;
mod uri;

pub use ca::{CertifiedKey, DevCa};
pub use crl::{CRL_VALIDITY, CrlInfo, Revocation, Serial, check_crl, crls_from_pem};
pub use error::PkiError;
pub use layout::{InitSpec, PkiLayout, Revoked, init, write_certified_key};
pub use spec::parse_user_spec;
pub use uri::{
    cert_der_from_pem, principal_from_der, principal_from_pem, principal_uris, subject_of_der,
};

// Re-exported so callers do not need nadc-core just to name these.
pub use nadc_core::{ForceId, Principal, Role};

#[cfg(test)]
mod tests;
