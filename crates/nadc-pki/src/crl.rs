//! Revocation: certificate serial numbers, the certificate revocation list
//! (CRL) a CA signs, and checking a CRL before a node relies on it.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use crate::PkiError;
use crate::ca::{DevCa, since_epoch};

/// How long a CRL from [`DevCa::issue_crl`] says it is current (its
/// `nextUpdate`). Nodes keep enforcing a CRL after that (see `deploy/PKI.md`);
/// they only warn that it is stale.
pub const CRL_VALIDITY: TimeDelta = TimeDelta::days(30);

/// A certificate serial number: the magnitude of the DER INTEGER, written as
/// lower-case hex without separators or leading zero bytes (`openssl x509
/// -serial` prints the same digits in upper case).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// Parses a serial written in hex, with or without `0x` and `:` separators
    /// (`3A:0F:..`, `0x3a0f..`, `3a0f..`), in any letter case.
    pub fn parse(s: &str) -> Result<Self, PkiError> {
        let bad = |reason: &str| PkiError::BadSerial {
            serial: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() {
            return Err(bad("no hex digits"));
        }
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(
                "only hex digits 0-9, a-f and ':' separators are allowed",
            ));
        }
        // An odd number of digits means a leading zero was left out.
        let digits = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| bad("not hex")))
            .collect::<Result<Vec<u8>, _>>()?;
        if bytes.len() > 21 {
            return Err(bad(
                "longer than the 20 bytes a certificate serial may have",
            ));
        }
        Ok(Self::from_magnitude(&bytes))
    }

    /// The serial of a certificate (DER).
    pub fn of_cert_der(der: &[u8]) -> Result<Self, PkiError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        Ok(Self::from_magnitude(
            &cert.tbs_certificate.serial.to_bytes_be(),
        ))
    }

    fn from_magnitude(bytes: &[u8]) -> Self {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let trimmed = &bytes[first..];
        Self(if trimmed.is_empty() {
            vec![0]
        } else {
            trimmed.to_vec()
        })
    }

    /// The magnitude's bytes, big-endian, without leading zero bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A revoked certificate, as a CA records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The certificate's serial number.
    pub serial: Serial,
    /// When the CA revoked it.
    pub revoked_at: DateTime<Utc>,
    /// Whose it was, for people (e.g. `bof AVON`); not used by any check.
    pub subject: String,
}

impl DevCa {
    /// Signs a CRL (PEM) listing `revoked`, with CRL number `number` (which
    /// must grow with every CRL this CA issues), current from `this_update`
    /// for [`CRL_VALIDITY`].
    pub fn issue_crl(
        &self,
        revoked: &[Revocation],
        number: u64,
        this_update: DateTime<Utc>,
    ) -> Result<String, PkiError> {
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let params = CertificateRevocationListParams {
            this_update: since_epoch(epoch, this_update),
            next_update: since_epoch(epoch, this_update + CRL_VALIDITY),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                    revocation_time: since_epoch(epoch, r.revoked_at),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// What [`check_crl`] found in a CRL that it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInfo {
    /// The issuing CA's subject, e.g. `CN=nadc development CA`.
    pub issuer: String,
    /// Which CA certificate (index into the `cas` given) signed it.
    pub ca_index: usize,
    /// The CRL number, if it has one.
    pub number: Option<u64>,
    /// The serials it lists.
    pub revoked: Vec<Serial>,
    /// When it says the next CRL is due (`None`: it does not say).
    pub next_update: Option<DateTime<Utc>>,
}

impl CrlInfo {
    /// Whether this CRL revokes the certificate `cert_der`: issued by this
    /// CRL's CA (by name) with a listed serial. A certificate that cannot
    /// be parsed is not matched (it could not have been accepted).
    pub fn revokes(&self, cert_der: &[u8]) -> bool {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
            return false;
        };
        cert.issuer().to_string() == self.issuer
            && self.revoked.contains(&Serial::from_magnitude(
                &cert.tbs_certificate.serial.to_bytes_be(),
            ))
    }

    /// Whether the CRL's `nextUpdate` has passed at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.next_update.is_some_and(|t| t < now)
    }
}

fn crl_err(reason: impl Into<String>) -> PkiError {
    PkiError::BadCrl(reason.into())
}

fn to_chrono(t: x509_parser::time::ASN1Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.timestamp(), 0)
}

/// Reads every CRL in a PEM text (`-----BEGIN X509 CRL-----` blocks).
pub fn crls_from_pem(pem: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, PkiError> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| crl_err(format!("cannot read PEM: {e}")))?;
    if crls.is_empty() {
        return Err(crl_err("no X509 CRL block found"));
    }
    Ok(crls)
}

/// Checks that a CRL (DER) is one a node can rely on: it parses, it was
/// issued by one of `cas` (DER certificates: same subject, and that CA's key
/// verifies its signature), and that CA may sign CRLs.
///
/// A node refuses to load a CRL that fails this, rather than find out at
/// the first handshake (where a CRL from the wrong issuer would silently
/// revoke nothing, and a badly signed one would refuse every certificate of
/// its CA).
pub fn check_crl(crl: &[u8], cas: &[&[u8]]) -> Result<CrlInfo, PkiError> {
    let (rest, parsed) =
        x509_parser::parse_x509_crl(crl).map_err(|e| crl_err(format!("cannot parse CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(crl_err("trailing data after the CRL"));
    }
    let issuer = parsed.issuer().to_string();
    let mut subject_matched = false;
    for (i, ca_der) in cas.iter().enumerate() {
        let (_, ca) = x509_parser::parse_x509_certificate(ca_der)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        if ca.subject().as_raw() != parsed.issuer().as_raw() {
            continue;
        }
        subject_matched = true;
        if parsed.verify_signature(ca.public_key()).is_err() {
            continue;
        }
        if let Ok(Some(ku)) = ca.key_usage()
            && !ku.value.crl_sign()
        {
            return Err(crl_err(format!(
                "the CRL is signed by CA {issuer}, whose keyUsage does not include cRLSign"
            )));
        }
        return Ok(CrlInfo {
            issuer,
            ca_index: i,
            number: parsed.crl_number().and_then(|n| u64::try_from(n).ok()),
            revoked: parsed
                .iter_revoked_certificates()
                .map(|r| Serial::from_magnitude(&r.serial().to_bytes_be()))
                .collect(),
            next_update: parsed.next_update().and_then(to_chrono),
        });
    }
    Err(crl_err(if subject_matched {
        format!(
            "the CRL names issuer {issuer}, but its signature does not verify with that CA's key \
             (a CRL from another CA of the same name?)"
        )
    } else {
        format!("the CRL's issuer {issuer} is not one of the trusted CA certificates")
    }))
}
