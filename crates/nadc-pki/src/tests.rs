//! Unit tests: real keys, real certificates, real files in temporary directories.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;

fn force(s: &str) -> ForceId {
    ForceId::new(s).unwrap()
}

fn der(ck: &CertifiedKey) -> Vec<u8> {
    ck.cert_der().unwrap()
}

/// A self-signed certificate made with rcgen directly, with the given SAN URIs
/// (and a CN that names a force, to show the CN is ignored).
fn raw_cert_with_uris(uris: &[&str]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "AVON BOF");
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI(u.to_string().try_into().unwrap()))
        .collect();
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn refused(uris: &[&str]) -> PkiError {
    principal_from_der(&raw_cert_with_uris(uris)).unwrap_err()
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert_der_from_pem(ca_pem).unwrap()))
        .unwrap();
    Arc::new(roots)
}

fn client_verifier(ca_pem: &str) -> Arc<dyn ClientCertVerifier> {
    WebPkiClientVerifier::builder_with_provider(
        roots(ca_pem),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap()
}

fn server_verifier(ca: &DevCa) -> Arc<WebPkiServerVerifier> {
    WebPkiServerVerifier::builder_with_provider(
        roots(&ca.cert_pem()),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap()
}

fn verify_client(ca: &DevCa, ck: &CertifiedKey) -> Result<(), rustls::Error> {
    client_verifier(&ca.cert_pem())
        .verify_client_cert(&CertificateDer::from(der(ck)), &[], UnixTime::now())
        .map(|_| ())
}

fn verify_server(ca: &DevCa, ck: &CertifiedKey, name: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    server_verifier(ca)
        .verify_server_cert(
            &CertificateDer::from(der(ck)),
            &[],
            &name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[test]
fn issue_node_round_trip() {
    let ca = DevCa::generate("test CA").unwrap();
    let ck = ca
        .issue_node(
            "national-1",
            &["nadc.example.police.uk".to_string()],
            &["10.0.0.7".parse().unwrap()],
        )
        .unwrap();
    assert!(ck.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(ck.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        principal_from_pem(&ck.cert_pem).unwrap(),
        Principal::Node {
            name: "national-1".into()
        }
    );

    // SANs: the URI, the given and default DNS names and IPs.
    let der = der(&ck);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let names: Vec<String> = san
        .general_names
        .iter()
        .map(|g| match g {
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) => format!("IP:{b:?}"),
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "URI:nadc://node/national-1".to_string(),
            "DNS:nadc.example.police.uk".into(),
            "DNS:localhost".into(),
            format!("IP:{:?}", [10u8, 0, 0, 7]),
            format!("IP:{:?}", [127u8, 0, 0, 1]),
            format!("IP:{:?}", Ipv6Addr::LOCALHOST.octets()),
        ]
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "nadc node national-1"
    );
}

#[test]
fn issue_bof_round_trip() {
    let ca = DevCa::generate("test CA").unwrap();
    let ck = ca.issue_bof(&force("AVON")).unwrap();
    assert_eq!(
        principal_from_der(&der(&ck)).unwrap(),
        Principal::Bof {
            force: force("AVON")
        }
    );
    let der = der(&ck);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "AVON BOF"
    );
}

#[test]
fn issue_user_round_trip_keeps_role_order() {
    let ca = DevCa::generate("test CA").unwrap();
    let roles = [Role::Supervisor, Role::Analyst, Role::HotlistManager];
    let ck = ca.issue_user(&force("KENT"), "alice", &roles).unwrap();
    let p = principal_from_pem(&ck.cert_pem).unwrap();
    assert_eq!(
        p,
        Principal::User {
            force: force("KENT"),
            name: "alice".into(),
            roles: roles.to_vec(),
        }
    );
    assert_eq!(
        principal_uris(&p),
        [
            "nadc://user/KENT/alice",
            "nadc://role/supervisor",
            "nadc://role/analyst",
            "nadc://role/hotlist-manager",
        ]
    );
    let der = der(&ck);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "alice (KENT)"
    );
}

#[test]
fn principal_uris_of_node_and_bof() {
    assert_eq!(
        principal_uris(&Principal::Node { name: "n1".into() }),
        ["nadc://node/n1"]
    );
    assert_eq!(
        principal_uris(&Principal::Bof {
            force: force("west_mids")
        }),
        ["nadc://bof/WEST_MIDS"]
    );
}

#[test]
fn leaf_is_a_proper_end_entity_chained_to_the_ca() {
    let ca = DevCa::generate("test CA").unwrap();
    let ca_der = cert_der_from_pem(&ca.cert_pem()).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca_cert.is_ca());
    let ca_ku = ca_cert.key_usage().unwrap().unwrap().value;
    assert!(ca_ku.key_cert_sign() && ca_ku.crl_sign());
    ca_cert.verify_signature(None).unwrap();
    let ca_ski = ca_cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("CA has a subject key identifier");

    let ck = ca.issue_bof(&force("AVON")).unwrap();
    let leaf_der = der(&ck);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    assert_eq!(leaf.version(), x509_parser::x509::X509Version::V3);
    let bc = leaf.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca);
    assert!(leaf.key_usage().unwrap().unwrap().value.digital_signature());
    assert_eq!(leaf.issuer(), ca_cert.subject());
    let aki = leaf
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("leaf has an authority key identifier");
    assert_eq!(aki, ca_ski);
    leaf.verify_signature(Some(ca_cert.public_key())).unwrap();

    // Validity: starts a little in the past, lasts about two years.
    let now = Utc::now().timestamp();
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    assert!(
        nb < now - 60 && nb > now - 3600,
        "not_before {nb} vs now {now}"
    );
    let days = (na - now) / 86_400;
    assert!((700..=740).contains(&days), "{days} days");

    // Serial numbers differ between certificates.
    let ck2 = ca.issue_bof(&force("AVON")).unwrap();
    let der2 = der(&ck2);
    let (_, leaf2) = x509_parser::parse_x509_certificate(&der2).unwrap();
    assert_ne!(leaf.raw_serial(), leaf2.raw_serial());

    // A certificate from another CA does not chain.
    let other = DevCa::generate("other CA").unwrap();
    let foreign = other.issue_bof(&force("AVON")).unwrap();
    let foreign_der = der(&foreign);
    let (_, foreign) = x509_parser::parse_x509_certificate(&foreign_der).unwrap();
    assert!(
        foreign
            .verify_signature(Some(ca_cert.public_key()))
            .is_err()
    );
}

#[test]
fn rustls_accepts_client_certificates() {
    let ca = DevCa::generate("test CA").unwrap();
    verify_client(&ca, &ca.issue_bof(&force("AVON")).unwrap()).unwrap();
    verify_client(
        &ca,
        &ca.issue_user(&force("AVON"), "alice", &[Role::Analyst])
            .unwrap(),
    )
    .unwrap();
    verify_client(&ca, &ca.issue_node("n1", &[], &[]).unwrap()).unwrap();

    let other = DevCa::generate("other CA").unwrap();
    let err = verify_client(&ca, &other.issue_bof(&force("AVON")).unwrap()).unwrap_err();
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn rustls_refuses_expired_certificate() {
    let ca = DevCa::generate("test CA").unwrap();
    let now = Utc::now();
    let expired = ca
        .issue_with_validity(
            &Principal::Bof {
                force: force("AVON"),
            },
            &[],
            &[],
            now - TimeDelta::days(800),
            now - TimeDelta::days(70),
        )
        .unwrap();
    // It still names its principal: expiry is the TLS layer's business.
    assert_eq!(
        principal_from_der(&der(&expired)).unwrap(),
        Principal::Bof {
            force: force("AVON")
        }
    );
    let err = verify_client(&ca, &expired).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
}

#[test]
fn rustls_accepts_node_as_server() {
    let ca = DevCa::generate("test CA").unwrap();
    let node = ca
        .issue_node(
            "national-1",
            &["nadc.example".to_string()],
            &[IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))],
        )
        .unwrap();
    for name in [
        "localhost",
        "127.0.0.1",
        "::1",
        "nadc.example",
        "192.0.2.10",
    ] {
        verify_server(&ca, &node, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = verify_server(&ca, &node, "elsewhere.example").unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{err:?}"
    );

    // A BOF certificate is for clients only (no serverAuth), and names no host.
    let bof = ca.issue_bof(&force("AVON")).unwrap();
    assert!(verify_server(&ca, &bof, "localhost").is_err());
}

#[test]
fn refuses_certificate_without_nadc_uri() {
    for uris in [&[][..], &["spiffe://example.org/avon"][..]] {
        let err = refused(uris);
        assert!(matches!(err, PkiError::NoPrincipal), "{err:?}");
        assert!(err.to_string().contains("no nadc principal URI"), "{err}");
    }
    // No subjectAltName at all.
    let mut params = CertificateParams::default();
    params.subject_alt_names.clear();
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    assert!(matches!(
        principal_from_der(&der),
        Err(PkiError::NoPrincipal)
    ));
}

#[test]
fn refuses_roles_without_principal() {
    let err = refused(&["nadc://role/analyst"]);
    assert!(matches!(err, PkiError::NoPrincipal), "{err:?}");
}

#[test]
fn other_uris_and_the_cn_are_ignored() {
    // The CN says "AVON BOF"; only the URI counts.
    let der = raw_cert_with_uris(&["https://kent.example/", "nadc://bof/KENT"]);
    assert_eq!(
        principal_from_der(&der).unwrap(),
        Principal::Bof {
            force: force("KENT")
        }
    );
}

#[test]
fn refuses_two_principal_uris() {
    let err = refused(&["nadc://bof/AVON", "nadc://user/AVON/alice"]);
    assert!(matches!(err, PkiError::MultiplePrincipals(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("2 nadc principal URIs")
            && msg.contains("nadc://bof/AVON")
            && msg.contains("nadc://user/AVON/alice"),
        "{msg}"
    );
    // Even the same principal twice.
    let err = refused(&["nadc://bof/AVON", "nadc://bof/AVON"]);
    assert!(matches!(err, PkiError::MultiplePrincipals(_)), "{err:?}");
}

#[test]
fn refuses_bad_force_in_uri() {
    let err = refused(&["nadc://bof/A-VON"]);
    assert!(matches!(err, PkiError::BadUriIdentity { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("nadc://bof/A-VON") && msg.contains("invalid force code"),
        "{msg}"
    );

    // Lower case is not the canonical form: refused, not silently upper-cased.
    let err = refused(&["nadc://user/avon/alice"]);
    assert!(matches!(err, PkiError::MalformedUri { .. }), "{err:?}");
    assert!(err.to_string().contains("\"AVON\" (upper case)"), "{err}");
}

#[test]
fn refuses_bad_name_in_uri() {
    let err = refused(&["nadc://user/AVON/al%20ice"]);
    assert!(
        err.to_string().contains("invalid name \"al%20ice\""),
        "{err}"
    );
    let err = refused(&["nadc://node/"]);
    assert!(err.to_string().contains("invalid name \"\""), "{err}");
}

#[test]
fn refuses_unknown_role() {
    let err = refused(&["nadc://user/AVON/alice", "nadc://role/wizard"]);
    assert!(matches!(err, PkiError::BadUriIdentity { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("nadc://role/wizard") && msg.contains("unknown role \"wizard\""),
        "{msg}"
    );
    let err = refused(&["nadc://user/AVON/alice", "nadc://role/Analyst"]);
    assert!(
        err.to_string().contains("\"analyst\" (lower case)"),
        "{err}"
    );
}

#[test]
fn refuses_duplicate_role() {
    let err = refused(&[
        "nadc://user/AVON/alice",
        "nadc://role/analyst",
        "nadc://role/analyst",
    ]);
    assert!(matches!(err, PkiError::DuplicateRole(_)), "{err:?}");
    assert!(err.to_string().contains("\"analyst\""), "{err}");
}

#[test]
fn refuses_role_on_bof_and_node() {
    let err = refused(&["nadc://role/admin", "nadc://bof/AVON"]);
    assert!(matches!(err, PkiError::RolesOnNonUser { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("nadc://role/admin") && msg.contains("bof AVON"),
        "{msg}"
    );
    let err = refused(&["nadc://node/n1", "nadc://role/admin"]);
    assert!(err.to_string().contains("node n1"), "{err}");
}

#[test]
fn refuses_malformed_nadc_uris() {
    for (uri, needle) in [
        ("nadc://bof/AVON/extra", "expected nadc://bof/<FORCE>"),
        ("nadc://user/AVON", "expected nadc://user/<FORCE>/<name>"),
        ("nadc://admin/AVON", "unknown kind \"admin\""),
        ("NADC://bof/AVON", "must start with \"nadc://\""),
        ("nadc:bof/AVON", "must start with \"nadc://\""),
    ] {
        let err = refused(&[uri]);
        assert!(
            matches!(err, PkiError::MalformedUri { .. }),
            "{uri}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(uri) && msg.contains(needle), "{uri}: {msg}");
    }
}

#[test]
fn refuses_garbage() {
    assert!(matches!(
        principal_from_der(b"not a certificate"),
        Err(PkiError::BadCertificate(_))
    ));
    let mut der = raw_cert_with_uris(&["nadc://bof/AVON"]);
    der.push(0);
    let err = principal_from_der(&der).unwrap_err();
    assert!(err.to_string().contains("trailing data"), "{err}");
    assert!(matches!(
        cert_der_from_pem("nope"),
        Err(PkiError::BadCertificate(_))
    ));
}

#[test]
fn issuing_refuses_bad_input() {
    let ca = DevCa::generate("test CA").unwrap();
    let err = ca.issue_node("a b", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("invalid name \"a b\""), "{err}");
    let err = ca
        .issue_user(&force("AVON"), "", &[Role::Admin])
        .unwrap_err();
    assert!(matches!(err, PkiError::Identity(_)), "{err:?}");
    let err = ca
        .issue_user(&force("AVON"), "alice", &[Role::Admin, Role::Admin])
        .unwrap_err();
    assert!(matches!(err, PkiError::DuplicateRole(_)), "{err:?}");
    let err = ca
        .issue_node("n1", &["bad name.example".to_string()], &[])
        .unwrap_err();
    assert!(matches!(err, PkiError::BadDnsName(_)), "{err:?}");

    let now = Utc::now();
    let bof = Principal::Bof {
        force: force("AVON"),
    };
    let err = ca
        .issue_with_validity(
            &bof,
            &["localhost".to_string()],
            &[],
            now,
            now + TimeDelta::days(1),
        )
        .unwrap_err();
    assert!(matches!(err, PkiError::SanOnNonNode(_)), "{err:?}");
    let err = ca
        .issue_with_validity(&bof, &[], &[], now, now - TimeDelta::days(1))
        .unwrap_err();
    assert!(matches!(err, PkiError::BadValidity(_)), "{err:?}");

    assert!(matches!(DevCa::generate(" "), Err(PkiError::BadCa(_))));
}

#[test]
fn parse_user_spec_accepts_good_specs() {
    assert_eq!(
        parse_user_spec("alice:analyst:AVON").unwrap(),
        ("alice".to_string(), vec![Role::Analyst], force("AVON"))
    );
    assert_eq!(
        parse_user_spec("bob:investigator+supervisor:kent").unwrap(),
        (
            "bob".to_string(),
            vec![Role::Investigator, Role::Supervisor],
            force("KENT")
        )
    );
    assert_eq!(
        parse_user_spec("c.d-2:hotlist-manager+auditor+admin:WEST_MIDS")
            .unwrap()
            .1,
        vec![Role::HotlistManager, Role::Auditor, Role::Admin]
    );
}

#[test]
fn parse_user_spec_refuses_bad_specs() {
    for (spec, needle) in [
        ("x", "expected 3 fields"),
        ("a:analyst:AVON:extra", "expected 3 fields"),
        ("a:wizard:AVON", "unknown role \"wizard\""),
        ("a:analyst:A B", "invalid force code \"A B\""),
        ("a b:analyst:AVON", "invalid name \"a b\""),
        (":analyst:AVON", "invalid name \"\""),
        ("a::AVON", "no roles"),
        ("a:analyst+:AVON", "empty role name"),
        (
            "a:analyst+analyst:AVON",
            "role analyst given more than once",
        ),
    ] {
        let err = parse_user_spec(spec).unwrap_err();
        assert!(
            matches!(err, PkiError::BadUserSpec { .. }),
            "{spec}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{spec:?}")) && msg.contains(needle),
            "{spec}: {msg}"
        );
    }
}

fn sample_spec() -> InitSpec {
    InitSpec {
        node_names: vec!["national-1".into(), "national-2".into()],
        node_dns: vec!["nadc.example".into()],
        node_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        forces: vec![force("AVON"), force("KENT")],
        users: vec![
            ("alice".into(), vec![Role::Analyst], force("AVON")),
            (
                "bob".into(),
                vec![Role::Investigator, Role::Supervisor],
                force("KENT"),
            ),
        ],
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_the_documented_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let layout = init(&dir, &sample_spec(), false).unwrap();
    assert_eq!(layout, PkiLayout::new(&dir));

    let expected = [
        "ca.crt",
        "ca.key",
        "nodes/national-1.crt",
        "nodes/national-1.key",
        "nodes/national-2.crt",
        "nodes/national-2.key",
        "bofs/AVON.crt",
        "bofs/AVON.key",
        "bofs/KENT.crt",
        "bofs/KENT.key",
        "users/alice.crt",
        "users/alice.key",
        "users/bob.crt",
        "users/bob.key",
    ];
    for f in expected {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(layout.ca_cert(), dir.join("ca.crt"));
    assert_eq!(layout.ca_key(), dir.join("ca.key"));
    assert_eq!(
        layout.node_cert("national-1"),
        dir.join("nodes/national-1.crt")
    );
    assert_eq!(
        layout.node_key("national-1"),
        dir.join("nodes/national-1.key")
    );
    assert_eq!(layout.bof_cert(&force("AVON")), dir.join("bofs/AVON.crt"));
    assert_eq!(layout.bof_key(&force("AVON")), dir.join("bofs/AVON.key"));
    assert_eq!(layout.user_cert("bob"), dir.join("users/bob.crt"));
    assert_eq!(layout.user_key("bob"), dir.join("users/bob.key"));

    #[cfg(unix)]
    for f in expected {
        let m = mode(&dir.join(f));
        if f.ends_with(".key") {
            assert_eq!(m, 0o600, "{f} has mode {m:o}");
        } else {
            assert_eq!(m & 0o077 & !0o044, 0, "{f} has mode {m:o}");
        }
    }

    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(
        principal_from_pem(&read(layout.user_cert("bob"))).unwrap(),
        Principal::User {
            force: force("KENT"),
            name: "bob".into(),
            roles: vec![Role::Investigator, Role::Supervisor],
        }
    );
    assert_eq!(
        principal_from_pem(&read(layout.bof_cert(&force("KENT")))).unwrap(),
        Principal::Bof {
            force: force("KENT")
        }
    );

    // The written CA reloads, its certificates verify against it, and it can
    // issue more that verify too.
    let ca = layout.load_ca().unwrap();
    let node = CertifiedKey {
        cert_pem: read(layout.node_cert("national-2")),
        key_pem: read(layout.node_key("national-2")),
    };
    verify_server(&ca, &node, "nadc.example").unwrap();
    verify_server(&ca, &node, "192.0.2.1").unwrap();
    verify_client(&ca, &node).unwrap();

    let ca2 = DevCa::from_pem(&read(layout.ca_cert()), &read(layout.ca_key())).unwrap();
    let carol = ca2
        .issue_user(&force("AVON"), "carol", &[Role::Auditor])
        .unwrap();
    assert_eq!(
        principal_from_pem(&carol.cert_pem).unwrap(),
        Principal::User {
            force: force("AVON"),
            name: "carol".into(),
            roles: vec![Role::Auditor],
        }
    );
    verify_client(&ca, &carol).unwrap();
    write_certified_key(
        &layout.user_cert("carol"),
        &layout.user_key("carol"),
        &carol,
    )
    .unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&layout.user_key("carol")), 0o600);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let layout = init(dir, &InitSpec::default(), false).unwrap();
    let first_ca = std::fs::read_to_string(layout.ca_cert()).unwrap();

    let err = init(dir, &sample_spec(), false).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert_eq!(std::fs::read_to_string(layout.ca_cert()).unwrap(), first_ca);
    assert!(!layout.bof_cert(&force("AVON")).exists());

    // With force_overwrite: a new CA, and the listed certificates under it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A key made world-readable is tightened again when rewritten.
        std::fs::set_permissions(layout.ca_key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    init(dir, &sample_spec(), true).unwrap();
    let second_ca = std::fs::read_to_string(layout.ca_cert()).unwrap();
    assert_ne!(first_ca, second_ca);
    #[cfg(unix)]
    assert_eq!(mode(&layout.ca_key()), 0o600);
    let ca = layout.load_ca().unwrap();
    let bof = CertifiedKey {
        cert_pem: std::fs::read_to_string(layout.bof_cert(&force("AVON"))).unwrap(),
        key_pem: String::new(),
    };
    verify_client(&ca, &bof).unwrap();
}

#[test]
fn init_refuses_a_bad_spec_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");

    let mut spec = sample_spec();
    spec.users
        .push(("alice".into(), vec![Role::Admin], force("KENT")));
    let err = init(&dir, &spec, false).unwrap_err();
    assert!(
        matches!(err, PkiError::DuplicateInSpec { what: "user", .. }),
        "{err:?}"
    );

    let mut spec = sample_spec();
    spec.node_names.push("bad/name".into());
    let err = init(&dir, &spec, false).unwrap_err();
    assert!(err.to_string().contains("bad/name"), "{err}");

    assert!(!dir.exists());
}

#[test]
fn from_pem_refuses_unusable_cas() {
    let ca = DevCa::generate("test CA").unwrap();
    let other = DevCa::generate("other CA").unwrap();
    let err = DevCa::from_pem(&ca.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");

    let leaf = ca.issue_bof(&force("AVON")).unwrap();
    let err = DevCa::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
    assert!(err.to_string().contains("not a CA"), "{err}");

    let err = DevCa::from_pem(&ca.cert_pem(), "garbage").unwrap_err();
    assert!(matches!(err, PkiError::BadCa(_)), "{err:?}");

    // Debug output never shows private keys.
    assert!(!format!("{ca:?}").contains("PRIVATE"));
    assert!(!format!("{leaf:?}").contains("PRIVATE"));
}

/// Certificates made with the `openssl` commands in `deploy/PKI.md`, as a
/// force with its own CA would.
#[test]
fn accepts_certificates_issued_with_openssl_as_documented() {
    let ca_pem = include_str!("../tests/fixtures/openssl/ca.crt");
    let bof_pem = include_str!("../tests/fixtures/openssl/AVON.crt");
    let user_pem = include_str!("../tests/fixtures/openssl/alice.crt");
    assert_eq!(
        principal_from_pem(bof_pem).unwrap(),
        Principal::Bof {
            force: force("AVON")
        }
    );
    assert_eq!(
        principal_from_pem(user_pem).unwrap(),
        Principal::User {
            force: force("AVON"),
            name: "alice".into(),
            roles: vec![Role::Analyst, Role::Supervisor],
        }
    );

    // rustls accepts them as client certificates, at a time they are valid.
    let verifier = client_verifier(ca_pem);
    for pem in [bof_pem, user_pem] {
        let der = cert_der_from_pem(pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let during = cert.validity().not_before.timestamp() + 86_400;
        let at =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(during.try_into().unwrap()));
        verifier
            .verify_client_cert(&CertificateDer::from(der), &[], at)
            .unwrap();
    }
}

fn verify_client_with_crls(
    cas: &[&DevCa],
    crl_pems: &[String],
    ck: &CertifiedKey,
) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from(der_of(&ca.cert_pem())))
            .unwrap();
    }
    let crls = crl_pems
        .iter()
        .flat_map(|p| crls_from_pem(p).unwrap())
        .collect::<Vec<_>>();
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .with_crls(crls)
    .allow_unknown_revocation_status()
    .build()
    .unwrap()
    .verify_client_cert(&CertificateDer::from(der(ck)), &[], UnixTime::now())
    .map(|_| ())
}

fn der_of(pem: &str) -> Vec<u8> {
    cert_der_from_pem(pem).unwrap()
}

fn revocation(ck: &CertifiedKey, subject: &str) -> Revocation {
    Revocation {
        serial: Serial::of_cert_der(&der(ck)).unwrap(),
        revoked_at: Utc::now() - TimeDelta::minutes(1),
        subject: subject.into(),
    }
}

#[test]
fn a_crl_lists_the_revoked_serials_and_rustls_refuses_exactly_those() {
    let ca = DevCa::generate("test CA").unwrap();
    let avon = ca.issue_bof(&force("AVON")).unwrap();
    let kent = ca.issue_bof(&force("KENT")).unwrap();
    let crl = ca
        .issue_crl(&[revocation(&avon, "bof AVON")], 7, Utc::now())
        .unwrap();
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");

    let ca_der = der_of(&ca.cert_pem());
    let der_crl = crls_from_pem(&crl).unwrap().remove(0);
    let info = check_crl(&der_crl, &[&ca_der]).unwrap();
    assert_eq!(
        info.revoked,
        vec![Serial::of_cert_der(&der(&avon)).unwrap()]
    );
    assert_eq!(info.number, Some(7));
    assert_eq!(info.ca_index, 0);
    assert!(info.issuer.contains("test CA"), "{}", info.issuer);
    assert!(!info.is_stale(Utc::now()));
    assert!(info.is_stale(Utc::now() + CRL_VALIDITY + TimeDelta::days(1)));

    assert_eq!(
        verify_client_with_crls(&[&ca], std::slice::from_ref(&crl), &avon).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::Revoked)
    );
    verify_client_with_crls(&[&ca], std::slice::from_ref(&crl), &kent).unwrap();
    // Without the CRL the same certificate passes: the CRL is what refuses it.
    verify_client(&ca, &avon).unwrap();

    // A second CA in the bundle without a CRL: its certificates are not
    // refused for want of one (the node's policy), and the first CA's CRL
    // does not touch them.
    let other = DevCa::generate("other CA").unwrap();
    let met = other.issue_bof(&force("MET")).unwrap();
    verify_client_with_crls(&[&ca, &other], std::slice::from_ref(&crl), &met).unwrap();
}

#[test]
fn check_crl_refuses_crls_a_node_could_not_rely_on() {
    let ca = DevCa::generate("test CA").unwrap();
    let ca_der = der_of(&ca.cert_pem());
    // Another CA with the same name: same issuer name, wrong key.
    let twin = DevCa::generate("test CA").unwrap();
    let crl = twin.issue_crl(&[], 1, Utc::now()).unwrap();
    let err = check_crl(&crls_from_pem(&crl).unwrap()[0], &[&ca_der]).unwrap_err();
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
    // A CRL from a CA that is not in the bundle at all.
    let stranger = DevCa::generate("stranger CA").unwrap();
    let crl = stranger.issue_crl(&[], 1, Utc::now()).unwrap();
    let err = check_crl(&crls_from_pem(&crl).unwrap()[0], &[&ca_der]).unwrap_err();
    assert!(
        err.to_string().contains("stranger CA") && err.to_string().contains("not one of"),
        "{err}"
    );
    // Not a CRL at all.
    let err = crls_from_pem(&ca.cert_pem()).unwrap_err();
    assert!(err.to_string().contains("no X509 CRL"), "{err}");
    let err = check_crl(b"garbage", &[&ca_der]).unwrap_err();
    assert!(err.to_string().contains("cannot parse CRL"), "{err}");
}

#[test]
fn serials_parse_in_the_usual_spellings() {
    let s = Serial::parse("0A:1B:ff").unwrap();
    assert_eq!(s.as_bytes(), &[0x0a, 0x1b, 0xff]);
    assert_eq!(s.to_string(), "0a1bff");
    for spelling in ["0x0a1bff", "0A1BFF", "a1bff", "00:0a:1b:ff", " 0a1bff "] {
        assert_eq!(Serial::parse(spelling).unwrap(), s, "{spelling}");
    }
    for bad in ["", "0x", "zz", "12 34", "ab".repeat(22).as_str()] {
        let err = Serial::parse(bad).unwrap_err();
        assert!(matches!(err, PkiError::BadSerial { .. }), "{bad}: {err:?}");
    }
    // A certificate's serial reads back as openssl prints it (in lower case).
    let ca = DevCa::generate("test CA").unwrap();
    let ck = ca.issue_bof(&force("AVON")).unwrap();
    let cert_der = der(&ck);
    let serial = Serial::of_cert_der(&cert_der).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    assert_eq!(
        serial.to_string(),
        cert.raw_serial_as_string()
            .replace(':', "")
            .trim_start_matches("00")
    );
}

#[test]
fn revoking_in_a_layout_accumulates_and_rewrites_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let layout = init(dir.path(), &sample_spec(), false).unwrap();
    assert!(layout.revoked().unwrap().is_empty(), "nothing revoked yet");
    assert!(!layout.crl().exists(), "init writes no CRL");
    let ca_der = der_of(&std::fs::read_to_string(layout.ca_cert()).unwrap());
    let read_crl = || {
        let pem = std::fs::read_to_string(layout.crl()).unwrap();
        check_crl(&crls_from_pem(&pem).unwrap()[0], &[&ca_der]).unwrap()
    };
    let serial_of = |path: &std::path::Path| {
        Serial::of_cert_der(&der_of(&std::fs::read_to_string(path).unwrap())).unwrap()
    };

    let avon = layout.bof_cert(&force("AVON"));
    let first = layout.revoke_cert_file(&avon).unwrap();
    assert!(first.newly);
    assert_eq!((first.total, first.serial.clone()), (1, serial_of(&avon)));
    let crl1 = read_crl();
    assert_eq!(crl1.revoked, vec![serial_of(&avon)]);

    let alice = layout.user_cert("alice");
    let second = layout.revoke_cert_file(&alice).unwrap();
    assert_eq!((second.newly, second.total), (true, 2));
    let crl2 = read_crl();
    assert_eq!(crl2.revoked, vec![serial_of(&avon), serial_of(&alice)]);
    assert!(crl2.number > crl1.number, "CRL numbers grow");

    // Again: recorded once; the CRL is rewritten with both.
    let again = layout.revoke_cert_file(&avon).unwrap();
    assert_eq!((again.newly, again.total), (false, 2));
    assert_eq!(read_crl().revoked.len(), 2);
    let record = layout.revoked().unwrap();
    assert_eq!(record.len(), 2);
    assert_eq!(record[0].subject, "bof AVON");
    assert_eq!(record[1].subject, "user alice of AVON");

    // By serial, and a fresh CRL from the record.
    let by_serial = layout
        .revoke_serial(Serial::parse("0x1234").unwrap(), "lost laptop")
        .unwrap();
    assert_eq!(by_serial.total, 3);
    assert_eq!(layout.write_crl().unwrap(), 3);
    assert!(read_crl().revoked.contains(&Serial::parse("1234").unwrap()));

    // A certificate from another CA cannot be revoked here.
    let other = tempfile::tempdir().unwrap();
    let foreign = init(other.path(), &sample_spec(), false).unwrap();
    let err = layout
        .revoke_cert_file(&foreign.bof_cert(&force("AVON")))
        .unwrap_err();
    assert!(matches!(err, PkiError::NotIssuedByCa(_)), "{err:?}");
    assert_eq!(layout.revoked().unwrap().len(), 3, "nothing recorded");

    // A damaged record is reported with its line.
    std::fs::write(
        layout.revoked_list(),
        "# header\nnot-hex 2026-01-01T00:00:00Z x\n",
    )
    .unwrap();
    let err = layout.revoked().unwrap_err().to_string();
    assert!(err.contains("revoked.txt, line 2"), "{err}");
}
