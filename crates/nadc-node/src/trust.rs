//! What each CA in the node's bundle may issue (`[trust]` in the node's
//! configuration), checked at the TLS handshake.
//!
//! Without bindings every CA in the bundle may issue every principal (one
//! CA, as `nadc pki init` makes, issues everything). With bindings, every CA
//! in the bundle must be bound, or the configuration is refused when it is
//! loaded, naming the CA left unbound: a CA trusted for one force must not
//! be able to mint a node certificate, or a user of another force.
//!
//! The check runs after rustls' own verification (chain, dates, key usage,
//! CRLs) has accepted a certificate: the path to a trust anchor is built
//! again, this time accepting only a path whose anchor is bound to issue
//! the certificate's principal. A certificate outside its CA's binding is
//! refused at the handshake: the peer gets the `certificate_unknown` alert,
//! and the node logs the reason with the peer's address ([`Refusal`]). The
//! same check applies to the certificates the node's peers present when the
//! node calls them.
//!
//! With bindings, a certificate that names no readable nadc principal is
//! refused at the handshake too: no binding can allow it. (Without
//! bindings the services refuse it, with the reason.)

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nadc_core::{ForceId, Principal, Role};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde::Deserialize;

use crate::tls::{TlsError, load_certs};

/// `[trust]`: what each CA in the bundle may issue.
///
/// ```toml
/// [[trust.issuers]]
/// ca = "/etc/nadc/pki/national-ca.crt"
/// issues = ["node"]
///
/// [[trust.issuers]]
/// ca = "/etc/nadc/pki/kent-ca.crt"
/// issues = ["bof", "user"]
/// forces = ["KENT"]
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// One binding per CA (or CA file). None: every CA in the bundle may
    /// issue everything.
    #[serde(default)]
    pub issuers: Vec<IssuerBinding>,
}

/// A kind of certificate a CA may issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Issued {
    /// Node certificates (`nadc://node/NAME`): federation peers.
    Node,
    /// A force's BOF certificates (`nadc://bof/FORCE`).
    Bof,
    /// User certificates (`nadc://user/FORCE/NAME`).
    User,
}

impl Issued {
    fn as_str(self) -> &'static str {
        match self {
            Issued::Node => "node",
            Issued::Bof => "bof",
            Issued::User => "user",
        }
    }
}

/// What one CA may issue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerBinding {
    /// The CA's certificate (PEM; every certificate in the file is bound).
    /// It must be in the bundle `[tls] ca`.
    pub ca: PathBuf,
    /// The kinds of certificate it may issue.
    pub issues: Vec<Issued>,
    /// The forces whose BOF and user certificates it may issue (`"*"`: any
    /// force). Required when it issues BOF or user certificates.
    #[serde(default)]
    pub forces: Vec<String>,
    /// The roles its user certificates may carry (unset: any).
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

/// Forces a CA may vouch for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Forces {
    Any,
    Only(Vec<ForceId>),
}

/// A checked binding.
#[derive(Clone, Debug)]
struct IssuerRule {
    issues: Vec<Issued>,
    forces: Forces,
    roles: Option<Vec<Role>>,
}

impl IssuerBinding {
    /// Checks the binding and makes it a rule.
    fn rule(&self) -> Result<IssuerRule, String> {
        let at = || format!("trust.issuers (ca = {:?})", self.ca.display().to_string());
        if self.issues.is_empty() {
            return Err(format!(
                "{}: issues must name at least one of node, bof, user",
                at()
            ));
        }
        let for_forces = self.issues.iter().any(|i| *i != Issued::Node);
        let forces = if !for_forces {
            if !self.forces.is_empty() {
                return Err(format!(
                    "{}: forces apply to bof and user certificates, and this CA issues only node \
                     certificates",
                    at()
                ));
            }
            Forces::Only(Vec::new())
        } else if self.forces.iter().any(|f| f == "*") {
            if self.forces.len() > 1 {
                return Err(format!("{}: forces is either [\"*\"] or force codes", at()));
            }
            Forces::Any
        } else if self.forces.is_empty() {
            return Err(format!(
                "{}: a CA issuing bof or user certificates must say for which forces \
                 (forces = [\"KENT\"], or [\"*\"] for any)",
                at()
            ));
        } else {
            Forces::Only(
                self.forces
                    .iter()
                    .map(|f| ForceId::new(f).map_err(|e| format!("{}: forces: {e}", at())))
                    .collect::<Result<_, _>>()?,
            )
        };
        if self.roles.is_some() && !self.issues.contains(&Issued::User) {
            return Err(format!(
                "{}: roles apply to user certificates, and this CA issues none",
                at()
            ));
        }
        Ok(IssuerRule {
            issues: self.issues.clone(),
            forces,
            roles: self.roles.clone(),
        })
    }
}

impl TrustConfig {
    /// Checks every binding (the CA files are read when TLS is loaded).
    pub fn validate(&self) -> Result<(), String> {
        for b in &self.issuers {
            b.rule()?;
        }
        Ok(())
    }

    /// Whether any CA is bound (then every CA in the bundle must be).
    pub fn is_bound(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Makes relative CA paths relative to `base` (the config file's
    /// directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for b in &mut self.issuers {
            if b.ca.is_relative() {
                b.ca = base.join(&b.ca);
            }
        }
    }
}

fn list<T>(items: &[T], name: impl Fn(&T) -> String) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

impl IssuerRule {
    /// Whether a CA under this rule may issue `p`; if not, why, in words.
    fn permits(&self, p: &Principal) -> Result<(), String> {
        let issues = |k: Issued| self.issues.contains(&k);
        let kinds = list(&self.issues, |i| i.as_str().to_string());
        let force_ok = |f: &ForceId| match &self.forces {
            Forces::Any => true,
            Forces::Only(fs) => fs.contains(f),
        };
        let of_forces = || match &self.forces {
            Forces::Any => "any force".to_string(),
            Forces::Only(fs) => list(fs, |f| f.to_string()),
        };
        match p {
            Principal::Node { .. } if !issues(Issued::Node) => Err(format!(
                "it may issue {kinds} certificates only, not node certificates"
            )),
            Principal::Bof { .. } if !issues(Issued::Bof) => Err(format!(
                "it may issue {kinds} certificates only, not BOF certificates"
            )),
            Principal::User { .. } if !issues(Issued::User) => Err(format!(
                "it may issue {kinds} certificates only, not user certificates"
            )),
            Principal::Bof { force } | Principal::User { force, .. } if !force_ok(force) => {
                Err(format!(
                    "it may issue certificates of {} only, not of {force}",
                    of_forces()
                ))
            }
            Principal::User { roles, .. } => match &self.roles {
                Some(allowed) => match roles.iter().find(|r| !allowed.contains(r)) {
                    Some(r) => Err(format!(
                        "its users may hold the roles {} only, not {r}",
                        list(allowed, |r| r.to_string())
                    )),
                    None => Ok(()),
                },
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A certificate refused because no CA in the bundle may issue it.
#[derive(Clone, thiserror::Error)]
pub enum Refusal {
    /// Its CA's binding does not cover its principal.
    #[error("{principal} is outside what CA \"{ca}\" may issue: {why} ([[trust.issuers]])")]
    Outside {
        /// Who the certificate names.
        principal: String,
        /// The CA's subject.
        ca: String,
        /// Why, in words.
        why: String,
    },
    /// It names no principal a binding could allow.
    #[error(
        "it names no nadc principal ({0}); with [[trust.issuers]] every certificate must name one its CA may issue"
    )]
    NoPrincipal(String),
    /// No path from it reaches a CA (should not happen after rustls
    /// verified it).
    #[error("{principal}: no path to a CA of the bundle ({why})")]
    NoPath {
        /// Who the certificate names.
        principal: String,
        /// What path building said.
        why: String,
    },
}

// rustls shows a certificate error's inner error with Debug: show the words.
impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A CA of the bundle and what it may issue.
#[derive(Debug)]
struct BoundCa {
    /// Its subject, for people.
    name: String,
    /// Its trust anchor's subject and key, as webpki reports the anchor a
    /// path reached.
    subject: Vec<u8>,
    spki: Vec<u8>,
    rule: IssuerRule,
}

/// The bundle's CAs, each with what it may issue.
#[derive(Debug)]
pub struct Bindings {
    cas: Vec<BoundCa>,
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

fn trust_err(message: String) -> TlsError {
    TlsError::Trust(message)
}

impl Bindings {
    /// Binds each CA of the bundle (`bundle`, read from `bundle_path`) to
    /// what it may issue. `None` when nothing is bound. Refused: a binding
    /// naming a CA not in the bundle, a CA bound twice, and a CA of the
    /// bundle left unbound.
    pub fn resolve(
        bundle_path: &Path,
        bundle: &[CertificateDer<'static>],
        trust: &TrustConfig,
    ) -> Result<Option<Arc<Self>>, TlsError> {
        if !trust.is_bound() {
            return Ok(None);
        }
        let name_of = |der: &CertificateDer<'_>| {
            nadc_pki::subject_of_der(der.as_ref()).unwrap_or_else(|e| format!("unreadable: {e}"))
        };
        let mut rules: Vec<Option<IssuerRule>> = vec![None; bundle.len()];
        for b in &trust.issuers {
            let rule = b.rule().map_err(trust_err)?;
            for ca in load_certs(&b.ca)? {
                let Some(i) = bundle.iter().position(|c| *c == ca) else {
                    return Err(trust_err(format!(
                        "trust.issuers: CA \"{}\" in {} is not in the CA bundle {}: add it to \
                         the bundle, or remove its binding",
                        name_of(&ca),
                        b.ca.display(),
                        bundle_path.display()
                    )));
                };
                if rules[i].replace(rule.clone()).is_some() {
                    return Err(trust_err(format!(
                        "trust.issuers: CA \"{}\" is bound twice; give it one binding",
                        name_of(&ca)
                    )));
                }
            }
        }
        let mut cas = Vec::new();
        let mut anchors = Vec::new();
        for (i, (der, rule)) in bundle.iter().zip(rules).enumerate() {
            let Some(rule) = rule else {
                return Err(trust_err(format!(
                    "CA \"{}\" (certificate {} in the bundle {}) is not bound in \
                     [[trust.issuers]]: once any CA is bound, every CA in the bundle must be; \
                     bind it to what it may issue, or remove it from the bundle",
                    name_of(der),
                    i + 1,
                    bundle_path.display()
                )));
            };
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| trust_err(format!("CA \"{}\": {e}", name_of(der))))?
                .to_owned();
            cas.push(BoundCa {
                name: name_of(der),
                subject: anchor.subject.as_ref().to_vec(),
                spki: anchor.subject_public_key_info.as_ref().to_vec(),
                rule,
            });
            anchors.push(anchor);
        }
        Ok(Some(Arc::new(Self {
            cas,
            anchors,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })))
    }

    /// Checks a certificate that rustls has verified: some path from it to
    /// a trust anchor must end at a CA bound to issue its principal.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<(), rustls::Error> {
        let refused = |r: Refusal| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(r),
            )))
        };
        let principal = nadc_pki::principal_from_der(end_entity.as_ref())
            .map_err(|e| refused(Refusal::NoPrincipal(e.to_string())))?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let refusal = RefCell::new(None);
        let bound = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let anchor = path.anchor();
            let issuers = self.cas.iter().filter(|c| {
                c.subject == anchor.subject.as_ref()
                    && c.spki == anchor.subject_public_key_info.as_ref()
            });
            for ca in issuers {
                match ca.rule.permits(&principal) {
                    Ok(()) => return Ok(()),
                    Err(why) => {
                        *refusal.borrow_mut() = Some(Refusal::Outside {
                            principal: principal.describe(),
                            ca: ca.name.clone(),
                            why,
                        });
                    }
                }
            }
            Err(webpki::Error::UnknownIssuer)
        };
        let verified = cert.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            now,
            usage,
            None,
            Some(&bound),
        );
        match verified {
            Ok(_) => Ok(()),
            Err(e) => Err(refused(refusal.into_inner().unwrap_or_else(|| {
                Refusal::NoPath {
                    principal: principal.describe(),
                    why: e.to_string(),
                }
            }))),
        }
    }
}

/// The handshake-signature methods of a bound verifier: rustls' own
/// (`self.inner`), unchanged; the bindings are about certificates only.
macro_rules! inner_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// Client certificates: rustls' verification, then the bindings.
#[derive(Debug)]
pub struct BoundClientVerifier {
    /// rustls' verifier (chain, dates, key usage, CRLs).
    pub inner: Arc<dyn ClientCertVerifier>,
    /// What each CA may issue.
    pub bindings: Arc<Bindings>,
}

impl ClientCertVerifier for BoundClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.bindings.check(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        Ok(ClientCertVerified::assertion())
    }

    inner_signatures!();
}

/// Peers' server certificates: rustls' verification, then the bindings.
#[derive(Debug)]
pub struct BoundServerVerifier {
    /// rustls' verifier (chain, dates, key usage, name, CRLs).
    pub inner: Arc<dyn ServerCertVerifier>,
    /// What each CA may issue.
    pub bindings: Arc<Bindings>,
}

impl ServerCertVerifier for BoundServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.bindings.check(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        Ok(ServerCertVerified::assertion())
    }

    inner_signatures!();

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(toml_text: &str) -> IssuerBinding {
        toml::from_str(toml_text).unwrap()
    }

    fn user(force: &str, roles: &[Role]) -> Principal {
        Principal::User {
            force: ForceId::new(force).unwrap(),
            name: "eve".into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn a_force_ca_issues_its_own_force_only() {
        let kent = binding("ca = \"k.crt\"\nissues = [\"bof\", \"user\"]\nforces = [\"KENT\"]\n")
            .rule()
            .unwrap();
        let bof = |f: &str| Principal::Bof {
            force: ForceId::new(f).unwrap(),
        };
        assert_eq!(kent.permits(&bof("KENT")), Ok(()));
        assert_eq!(kent.permits(&user("KENT", &[Role::Admin])), Ok(()));
        let e = kent.permits(&bof("AVON")).unwrap_err();
        assert!(e.contains("of KENT only, not of AVON"), "{e}");
        let e = kent.permits(&user("AVON", &[])).unwrap_err();
        assert!(e.contains("not of AVON"), "{e}");
        let e = kent
            .permits(&Principal::Node { name: "n".into() })
            .unwrap_err();
        assert!(e.contains("not node certificates"), "{e}");
    }

    #[test]
    fn kinds_forces_and_roles_are_each_enforced() {
        let national = binding("ca = \"n.crt\"\nissues = [\"node\"]\n")
            .rule()
            .unwrap();
        assert_eq!(
            national.permits(&Principal::Node { name: "n".into() }),
            Ok(())
        );
        let e = national.permits(&user("KENT", &[])).unwrap_err();
        assert!(e.contains("node certificates only, not user"), "{e}");
        let any = binding(
            "ca = \"a.crt\"\nissues = [\"user\"]\nforces = [\"*\"]\nroles = [\"analyst\"]\n",
        )
        .rule()
        .unwrap();
        assert_eq!(any.permits(&user("MET", &[Role::Analyst])), Ok(()));
        let e = any
            .permits(&user("MET", &[Role::Analyst, Role::Auditor]))
            .unwrap_err();
        assert!(e.contains("roles analyst only, not auditor"), "{e}");
        let e = any
            .permits(&Principal::Bof {
                force: ForceId::new("MET").unwrap(),
            })
            .unwrap_err();
        assert!(e.contains("not BOF certificates"), "{e}");
    }

    #[test]
    fn a_binding_that_cannot_mean_what_it_says_is_refused() {
        for (text, words) in [
            ("issues = []", "at least one"),
            ("issues = [\"user\"]", "for which forces"),
            ("issues = [\"node\"]\nforces = [\"KENT\"]", "only node"),
            ("issues = [\"bof\"]\nforces = [\"*\", \"KENT\"]", "either"),
            ("issues = [\"bof\"]\nforces = [\"K\"]", "invalid force code"),
            (
                "issues = [\"bof\"]\nforces = [\"KENT\"]\nroles = []",
                "issues none",
            ),
        ] {
            let e = binding(&format!("ca = \"x.crt\"\n{text}\n"))
                .rule()
                .unwrap_err();
            assert!(e.contains(words) && e.contains("x.crt"), "{text}: {e}");
        }
        let e = toml::from_str::<IssuerBinding>("ca = \"x\"\nissues = [\"root\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("root"), "{e}");
    }
}
