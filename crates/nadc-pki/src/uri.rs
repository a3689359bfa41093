//! Reading principals from certificates, and writing them as URIs.

use nadc_core::identity::validate_name;
use nadc_core::{ForceId, Principal, Role};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;

use crate::PkiError;

/// The URI scheme of the identity scheme.
const SCHEME: &str = "nadc://";

/// The URI of a node.
pub(crate) fn node_uri(name: &str) -> String {
    format!("{SCHEME}node/{name}")
}

/// The URI of a force's BOF.
pub(crate) fn bof_uri(force: &ForceId) -> String {
    format!("{SCHEME}bof/{force}")
}

/// The URI of a user.
pub(crate) fn user_uri(force: &ForceId, name: &str) -> String {
    format!("{SCHEME}user/{force}/{name}")
}

/// The URI of a role.
pub(crate) fn role_uri(role: Role) -> String {
    format!("{SCHEME}role/{role}")
}

/// The URIs a principal is encoded as in a certificate's subjectAltName: the
/// principal URI first, then (for users) one role URI per role, in order.
///
/// This is the inverse of [`principal_from_der`]. It does not validate names;
/// issuing does.
pub fn principal_uris(p: &Principal) -> Vec<String> {
    match p {
        Principal::Node { name } => vec![node_uri(name)],
        Principal::Bof { force } => vec![bof_uri(force)],
        Principal::User { force, name, roles } => std::iter::once(user_uri(force, name))
            .chain(roles.iter().map(|r| role_uri(*r)))
            .collect(),
    }
}

/// One parsed `nadc:` URI.
enum NadcUri {
    /// A principal URI (users without roles yet).
    Principal(Principal),
    /// A role URI.
    Role(Role),
}

fn malformed(uri: &str, reason: impl Into<String>) -> PkiError {
    PkiError::MalformedUri {
        uri: uri.to_string(),
        reason: reason.into(),
    }
}

/// A force code, which must be written exactly in its canonical (upper case) form.
fn strict_force(uri: &str, s: &str) -> Result<ForceId, PkiError> {
    let force = ForceId::new(s).map_err(|source| PkiError::BadUriIdentity {
        uri: uri.to_string(),
        source,
    })?;
    if force.as_str() != s {
        return Err(malformed(
            uri,
            format!(
                "force code must be written exactly as {:?} (upper case)",
                force.as_str()
            ),
        ));
    }
    Ok(force)
}

/// A user or node name.
fn strict_name(uri: &str, s: &str) -> Result<String, PkiError> {
    validate_name(s).map_err(|source| PkiError::BadUriIdentity {
        uri: uri.to_string(),
        source,
    })?;
    Ok(s.to_string())
}

/// A role, which must be written exactly as its canonical (lower case) name.
fn strict_role(uri: &str, s: &str) -> Result<Role, PkiError> {
    let role: Role = s.parse().map_err(|source| PkiError::BadUriIdentity {
        uri: uri.to_string(),
        source,
    })?;
    if role.as_str() != s {
        return Err(malformed(
            uri,
            format!(
                "role must be written exactly as {:?} (lower case)",
                role.as_str()
            ),
        ));
    }
    Ok(role)
}

/// Parses a SAN URI. `Ok(None)` for URIs of other schemes, which are ignored.
fn parse_uri(uri: &str) -> Result<Option<NadcUri>, PkiError> {
    let is_nadc = uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("nadc:"));
    if !is_nadc {
        return Ok(None);
    }
    let Some(rest) = uri.strip_prefix(SCHEME) else {
        return Err(malformed(uri, "must start with \"nadc://\" in lower case"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let parsed = match parts.as_slice() {
        ["node", name] => NadcUri::Principal(Principal::Node {
            name: strict_name(uri, name)?,
        }),
        ["bof", force] => NadcUri::Principal(Principal::Bof {
            force: strict_force(uri, force)?,
        }),
        ["user", force, name] => NadcUri::Principal(Principal::User {
            force: strict_force(uri, force)?,
            name: strict_name(uri, name)?,
            roles: Vec::new(),
        }),
        ["role", role] => NadcUri::Role(strict_role(uri, role)?),
        ["node", ..] => return Err(malformed(uri, "expected nadc://node/<name>")),
        ["bof", ..] => return Err(malformed(uri, "expected nadc://bof/<FORCE>")),
        ["user", ..] => return Err(malformed(uri, "expected nadc://user/<FORCE>/<name>")),
        ["role", ..] => return Err(malformed(uri, "expected nadc://role/<role>")),
        [kind, ..] => {
            return Err(malformed(
                uri,
                format!("unknown kind {kind:?}: expected node, bof, user or role"),
            ));
        }
        [] => unreachable!("split yields at least one part"),
    };
    Ok(Some(parsed))
}

/// Reads the principal from a DER certificate.
///
/// This is meant for the client certificate the TLS layer has already
/// verified: it checks only the identity scheme (see the crate documentation),
/// not signatures, validity dates or key usages. The subject CN is ignored.
pub fn principal_from_der(der: &[u8]) -> Result<Principal, PkiError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate(format!(
            "{} bytes of trailing data after the certificate",
            rest.len()
        )));
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate(format!("subjectAltName: {e}")))?;
    let Some(san) = san else {
        return Err(PkiError::NoPrincipal);
    };

    let mut principals: Vec<(String, Principal)> = Vec::new();
    let mut roles: Vec<(String, Role)> = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::URI(uri) => match parse_uri(uri)? {
                Some(NadcUri::Principal(p)) => principals.push((uri.to_string(), p)),
                Some(NadcUri::Role(r)) => roles.push((uri.to_string(), r)),
                None => {}
            },
            GeneralName::Invalid(tag, _) => {
                return Err(PkiError::BadCertificate(format!(
                    "subjectAltName has an undecodable entry ({tag:?})"
                )));
            }
            _ => {}
        }
    }

    let principal = match principals.len() {
        0 => return Err(PkiError::NoPrincipal),
        1 => principals
            .pop()
            .map(|(_, p)| p)
            .ok_or(PkiError::NoPrincipal)?,
        _ => {
            return Err(PkiError::MultiplePrincipals(
                principals.into_iter().map(|(u, _)| u).collect(),
            ));
        }
    };

    let mut seen: Vec<Role> = Vec::with_capacity(roles.len());
    for (_, r) in &roles {
        if seen.contains(r) {
            return Err(PkiError::DuplicateRole(r.as_str().to_string()));
        }
        seen.push(*r);
    }

    match principal {
        Principal::User { force, name, .. } => Ok(Principal::User {
            force,
            name,
            roles: seen,
        }),
        other if !roles.is_empty() => Err(PkiError::RolesOnNonUser {
            principal: other.describe(),
            roles: roles.into_iter().map(|(u, _)| u).collect(),
        }),
        other => Ok(other),
    }
}

/// Decodes the first `CERTIFICATE` block of a PEM text to DER.
pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| PkiError::BadCertificate(format!("PEM: {e}")))
}

/// Reads the principal from a PEM certificate (the first `CERTIFICATE` block);
/// see [`principal_from_der`].
pub fn principal_from_pem(pem: &str) -> Result<Principal, PkiError> {
    principal_from_der(&cert_der_from_pem(pem)?)
}

/// The subject distinguished name of a DER certificate, for people
/// (`O=Kent Police, CN=KENT nadc CA`): naming a CA in logs and errors,
/// never for authorisation.
pub fn subject_of_der(der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    Ok(cert.subject().to_string())
}
