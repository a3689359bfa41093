//! A certificate authority that issues certificates following the identity scheme.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use nadc_core::identity::validate_name;
use nadc_core::{ForceId, Principal, Role};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::CertificateDer;

use crate::PkiError;
use crate::uri::{cert_der_from_pem, principal_from_der, principal_uris};

/// How long the CA is valid.
const CA_VALIDITY: TimeDelta = TimeDelta::days(3650);
/// How long node, BOF and user certificates are valid.
const LEAF_VALIDITY: TimeDelta = TimeDelta::days(730);
/// How far in the past certificates start, to allow for clock skew.
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// A certificate and its private key, both PEM.
///
/// The key is PKCS#8 (`-----BEGIN PRIVATE KEY-----`), ECDSA P-256.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Keep it secret.
    pub key_pem: String,
}

impl CertifiedKey {
    /// The certificate as DER.
    pub fn cert_der(&self) -> Result<Vec<u8>, PkiError> {
        cert_der_from_pem(&self.cert_pem)
    }
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[secret]")
            .finish()
    }
}

/// A CA that can issue node, BOF and user certificates.
///
/// Meant for development and tests, and for small deployments where one
/// operator issues every certificate. Forces with their own CA follow the
/// same scheme (see `deploy/PKI.md`).
pub struct DevCa {
    cert_pem: String,
    key_pem: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Issuer's Debug leaves the key out.
        f.debug_struct("DevCa")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn new_key() -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Sets the validity of `params`, checking the range is usable in a certificate.
fn set_validity(
    params: &mut CertificateParams,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(), PkiError> {
    if not_after <= not_before {
        return Err(PkiError::BadValidity(format!(
            "not_after ({not_after}) must be later than not_before ({not_before})"
        )));
    }
    for t in [not_before, not_after] {
        if !(1950..=9999).contains(&t.year()) {
            return Err(PkiError::BadValidity(format!(
                "{t} is outside the years 1950 to 9999 that certificates can express"
            )));
        }
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = since_epoch(epoch, not_before);
    params.not_after = since_epoch(epoch, not_after);
    Ok(())
}

/// `t` as one of rcgen's `time` values, built from the Unix `epoch` given as
/// such a value (so this crate need not name the `time` crate).
pub(crate) fn since_epoch<T>(epoch: T, t: DateTime<Utc>) -> T
where
    T: std::ops::Add<Duration, Output = T> + std::ops::Sub<Duration, Output = T>,
{
    let secs = t.timestamp();
    if secs >= 0 {
        epoch + Duration::from_secs(secs.unsigned_abs())
    } else {
        epoch - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Checks a DNS name for a node certificate.
fn check_dns_name(name: &str) -> Result<(), PkiError> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if (1..=253).contains(&name.len()) && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(PkiError::BadDnsName(name.to_string()))
    }
}

/// Checks a principal can be issued: valid names, no repeated role.
fn check_principal(p: &Principal) -> Result<(), PkiError> {
    match p {
        Principal::Node { name } => validate_name(name)?,
        Principal::Bof { .. } => {}
        Principal::User { name, roles, .. } => {
            validate_name(name)?;
            check_roles_unique(roles)?;
        }
    }
    Ok(())
}

pub(crate) fn check_roles_unique(roles: &[Role]) -> Result<(), PkiError> {
    for (i, r) in roles.iter().enumerate() {
        if roles[..i].contains(r) {
            return Err(PkiError::DuplicateRole(r.as_str().to_string()));
        }
    }
    Ok(())
}

/// The human-readable subject CN. Never used for authorisation.
fn display_name(p: &Principal) -> String {
    match p {
        Principal::Node { name } => format!("nadc node {name}"),
        Principal::Bof { force } => format!("{force} BOF"),
        Principal::User { force, name, .. } => format!("{name} ({force})"),
    }
}

/// Appends `extra` to `given`, skipping repeats.
fn with_defaults<T: PartialEq + Clone>(given: &[T], extra: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(given.len() + extra.len());
    for x in given.iter().chain(extra) {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

impl DevCa {
    /// Creates a new self-signed CA with subject CN `name`.
    ///
    /// ECDSA P-256, basicConstraints CA:TRUE with path length 0 (it signs
    /// end-entity certificates only), keyUsage keyCertSign and cRLSign, valid
    /// for about 10 years.
    pub fn generate(name: &str) -> Result<Self, PkiError> {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(PkiError::BadCa(format!(
                "CA name {name:?} must be non-empty printable text"
            )));
        }
        let now = Utc::now();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, now - CLOCK_SKEW, now + CA_VALIDITY)?;
        let key = new_key()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM. This is what nodes and clients trust.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PKCS#8 PEM. Keep it secret.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Reloads a CA from its certificate and PKCS#8 private key (PEM), to issue
    /// more certificates.
    ///
    /// Refuses a certificate that is not a CA, has expired, or does not match
    /// the key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let der = cert_der_from_pem(cert_pem)?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| PkiError::BadCa(format!("cannot read the CA private key: {e}")))?;
        {
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
            if !cert.is_ca() {
                return Err(PkiError::BadCa(
                    "the certificate is not a CA (no basicConstraints CA:TRUE)".into(),
                ));
            }
            if cert.validity().time_to_expiration().is_none() {
                return Err(PkiError::BadCa(format!(
                    "the CA certificate expired at {}",
                    cert.validity().not_after
                )));
            }
            if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(PkiError::BadCa(
                    "the private key does not belong to the CA certificate".into(),
                ));
            }
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der), key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    /// Whether this CA issued the certificate `der`: it names this CA as
    /// issuer and this CA's key verifies its signature.
    pub fn issued(&self, der: &[u8]) -> Result<bool, PkiError> {
        let ca_der = cert_der_from_pem(&self.cert_pem)?;
        let parse = |d| {
            x509_parser::parse_x509_certificate(d)
                .map(|(_, c)| c)
                .map_err(|e| PkiError::BadCertificate(e.to_string()))
        };
        let (ca, cert) = (parse(&ca_der)?, parse(der)?);
        Ok(cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok())
    }

    /// Issues a node certificate, valid about 2 years, for `nadc://node/<name>`
    /// and the given DNS names and IP addresses. `localhost`, `127.0.0.1` and
    /// `::1` are always included. EKU serverAuth and clientAuth (nodes also
    /// call each other).
    pub fn issue_node(
        &self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<CertifiedKey, PkiError> {
        let dns = with_defaults(dns, &["localhost".to_string()]);
        let ips = with_defaults(
            ips,
            &[
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        );
        let principal = Principal::Node {
            name: name.to_string(),
        };
        let now = Utc::now();
        self.issue_with_validity(
            &principal,
            &dns,
            &ips,
            now - CLOCK_SKEW,
            now + LEAF_VALIDITY,
        )
    }

    /// Issues a BOF certificate for `nadc://bof/<FORCE>`, valid about 2 years.
    /// EKU clientAuth.
    pub fn issue_bof(&self, force: &ForceId) -> Result<CertifiedKey, PkiError> {
        let principal = Principal::Bof {
            force: force.clone(),
        };
        let now = Utc::now();
        self.issue_with_validity(&principal, &[], &[], now - CLOCK_SKEW, now + LEAF_VALIDITY)
    }

    /// Issues a user certificate for `nadc://user/<FORCE>/<name>` with one
    /// `nadc://role/<role>` per role (in the order given), valid about 2
    /// years. EKU clientAuth.
    pub fn issue_user(
        &self,
        force: &ForceId,
        name: &str,
        roles: &[Role],
    ) -> Result<CertifiedKey, PkiError> {
        let principal = Principal::User {
            force: force.clone(),
            name: name.to_string(),
            roles: roles.to_vec(),
        };
        let now = Utc::now();
        self.issue_with_validity(&principal, &[], &[], now - CLOCK_SKEW, now + LEAF_VALIDITY)
    }

    /// Issues a certificate for any principal with an explicit validity
    /// period (e.g. an already expired one, for tests).
    ///
    /// `dns` and `ips` are used exactly as given (no `localhost` defaults) and
    /// must be empty unless the principal is a node.
    pub fn issue_with_validity(
        &self,
        principal: &Principal,
        dns: &[String],
        ips: &[IpAddr],
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<CertifiedKey, PkiError> {
        check_principal(principal)?;
        let is_node = matches!(principal, Principal::Node { .. });
        if !is_node && (!dns.is_empty() || !ips.is_empty()) {
            return Err(PkiError::SanOnNonNode(principal.describe()));
        }
        for d in dns {
            check_dns_name(d)?;
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&display_name(principal));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if is_node {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, not_before, not_after)?;

        let mut sans = Vec::new();
        for uri in principal_uris(principal) {
            sans.push(SanType::URI(uri.try_into()?));
        }
        for d in with_defaults(dns, &[]) {
            sans.push(SanType::DnsName(d.try_into()?));
        }
        for ip in with_defaults(ips, &[]) {
            sans.push(SanType::IpAddress(ip));
        }
        params.subject_alt_names = sans;

        // The serial number is left to rcgen: 20 bytes derived from the new
        // (random) public key, so unique per certificate.
        let key = new_key()?;
        let cert = params.signed_by(&key, &self.issuer)?;

        // Belt and braces: what we issue must read back as what was asked for.
        let read_back = principal_from_der(cert.der())?;
        if read_back != *principal {
            return Err(PkiError::Generate(format!(
                "issued certificate reads back as {read_back:?}, not {principal:?}"
            )));
        }
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
