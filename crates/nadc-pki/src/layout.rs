//! The development PKI's files on disk.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nadc_core::{ForceId, Role};

use crate::ca::{CertifiedKey, DevCa};
use crate::crl::{Revocation, Serial};
use crate::{PkiError, principal_from_der};

/// The subject CN of the CA [`init`] creates.
const DEV_CA_NAME: &str = "nadc development CA";

/// Where a development PKI's files live (written by `nadc pki init`):
///
/// ```text
/// DIR/ca.crt                 the CA certificate (trusted by nodes and clients)
/// DIR/ca.key                 the CA private key (mode 0600)
/// DIR/nodes/<name>.crt|.key  node certificates
/// DIR/bofs/<FORCE>.crt|.key  force BOF certificates
/// DIR/users/<name>.crt|.key  user certificates
/// DIR/revoked.txt            the CA's record of revoked certificates (`nadc pki revoke`)
/// DIR/crl.pem                the CRL the CA signed from that record (given to nodes)
/// ```
///
/// Certificates and keys are PEM; keys are PKCS#8 and mode 0600 on unix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiLayout {
    /// The PKI directory.
    pub root: PathBuf,
}

impl PkiLayout {
    /// A layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `DIR/ca.crt`.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }

    /// `DIR/ca.key`.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    /// `DIR/nodes/<name>.crt`.
    pub fn node_cert(&self, name: &str) -> PathBuf {
        self.root.join("nodes").join(format!("{name}.crt"))
    }

    /// `DIR/nodes/<name>.key`.
    pub fn node_key(&self, name: &str) -> PathBuf {
        self.root.join("nodes").join(format!("{name}.key"))
    }

    /// `DIR/bofs/<FORCE>.crt`.
    pub fn bof_cert(&self, force: &ForceId) -> PathBuf {
        self.root.join("bofs").join(format!("{force}.crt"))
    }

    /// `DIR/bofs/<FORCE>.key`.
    pub fn bof_key(&self, force: &ForceId) -> PathBuf {
        self.root.join("bofs").join(format!("{force}.key"))
    }

    /// `DIR/users/<name>.crt`.
    pub fn user_cert(&self, name: &str) -> PathBuf {
        self.root.join("users").join(format!("{name}.crt"))
    }

    /// `DIR/users/<name>.key`.
    pub fn user_key(&self, name: &str) -> PathBuf {
        self.root.join("users").join(format!("{name}.key"))
    }

    /// `DIR/revoked.txt`: one revoked certificate a line, `SERIAL TIME SUBJECT`.
    pub fn revoked_list(&self) -> PathBuf {
        self.root.join("revoked.txt")
    }

    /// `DIR/crl.pem`: the CA's current CRL.
    pub fn crl(&self) -> PathBuf {
        self.root.join("crl.pem")
    }

    /// Loads the CA from `ca.crt` and `ca.key`, to issue more certificates.
    pub fn load_ca(&self) -> Result<DevCa, PkiError> {
        let cert = read(&self.ca_cert())?;
        let key = read(&self.ca_key())?;
        DevCa::from_pem(&cert, &key)
    }

    /// The certificates revoked so far, oldest first (none if there is no
    /// `revoked.txt`).
    pub fn revoked(&self) -> Result<Vec<Revocation>, PkiError> {
        let path = self.revoked_list();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(PkiError::Io { path, source }),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| PkiError::BadRevokedList {
                path: path.clone(),
                line: i + 1,
                reason,
            };
            let mut parts = line.splitn(3, ' ');
            let serial =
                Serial::parse(parts.next().unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
            let at = parts.next().unwrap_or_default();
            let revoked_at = DateTime::parse_from_rfc3339(at)
                .map_err(|e| bad(format!("time {at:?}: {e}")))?
                .with_timezone(&Utc);
            out.push(Revocation {
                serial,
                revoked_at,
                subject: parts.next().unwrap_or_default().trim().to_string(),
            });
        }
        Ok(out)
    }

    /// Revokes the certificate in `cert_path`, which must have been issued by
    /// this layout's CA, and rewrites `crl.pem`. See [`PkiLayout::revoke_serial`].
    pub fn revoke_cert_file(&self, cert_path: &Path) -> Result<Revoked, PkiError> {
        let ca = self.load_ca()?;
        let der = crate::cert_der_from_pem(&read(cert_path)?)?;
        if !ca.issued(&der)? {
            return Err(PkiError::NotIssuedByCa(cert_path.to_path_buf()));
        }
        let subject = match principal_from_der(&der) {
            Ok(p) => p.describe(),
            Err(_) => "(no nadc principal)".to_string(),
        };
        self.revoke_with(&ca, Serial::of_cert_der(&der)?, &subject, Utc::now())
    }

    /// Records `serial` as revoked in `revoked.txt` (once: revoking it again
    /// changes nothing but the CRL's date) and writes a new `crl.pem` listing
    /// every certificate revoked so far. `subject` is for people reading the
    /// record.
    pub fn revoke_serial(&self, serial: Serial, subject: &str) -> Result<Revoked, PkiError> {
        let ca = self.load_ca()?;
        self.revoke_with(&ca, serial, subject, Utc::now())
    }

    fn revoke_with(
        &self,
        ca: &DevCa,
        serial: Serial,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<Revoked, PkiError> {
        let mut list = self.revoked()?;
        let newly = !list.iter().any(|r| r.serial == serial);
        if newly {
            list.push(Revocation {
                serial: serial.clone(),
                revoked_at: now,
                subject: subject.trim().replace(['\n', '\r'], " "),
            });
            let mut text =
                String::from("# serial revoked-at subject (written by nadc pki revoke)\n");
            for r in &list {
                text.push_str(&format!(
                    "{} {} {}\n",
                    r.serial,
                    r.revoked_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.subject
                ));
            }
            write_file(&self.revoked_list(), &text, false)?;
        }
        self.write_crl_with(ca, &list, now)?;
        Ok(Revoked {
            serial,
            newly,
            total: list.len(),
            crl: self.crl(),
        })
    }

    /// Writes a new `crl.pem` from `revoked.txt` (e.g. to renew a CRL whose
    /// `nextUpdate` is near), signed by the CA. Returns how many certificates
    /// it lists.
    pub fn write_crl(&self) -> Result<usize, PkiError> {
        let ca = self.load_ca()?;
        let list = self.revoked()?;
        self.write_crl_with(&ca, &list, Utc::now())?;
        Ok(list.len())
    }

    fn write_crl_with(
        &self,
        ca: &DevCa,
        list: &[Revocation],
        now: DateTime<Utc>,
    ) -> Result<(), PkiError> {
        // CRL numbers must grow: the time in seconds, or one more than the
        // current CRL's if that is not less.
        let previous = fs::read_to_string(self.crl())
            .ok()
            .and_then(|pem| crate::crl::crls_from_pem(&pem).ok())
            .and_then(|crls| {
                let ca_der = crate::cert_der_from_pem(&ca.cert_pem()).ok()?;
                crate::check_crl(crls.first()?, &[&ca_der]).ok()?.number
            });
        let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
        let number = previous.map_or(seconds, |p| seconds.max(p + 1));
        let pem = ca.issue_crl(list, number, now)?;
        write_file(&self.crl(), &pem, false)
    }
}

/// What [`PkiLayout::revoke_serial`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The serial revoked.
    pub serial: Serial,
    /// False if it was already revoked.
    pub newly: bool,
    /// How many certificates the CRL now lists.
    pub total: usize,
    /// The CRL written.
    pub crl: PathBuf,
}

/// What [`init`] issues besides the CA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitSpec {
    /// One node certificate per name.
    pub node_names: Vec<String>,
    /// Extra DNS names for every node certificate (`localhost` is always included).
    pub node_dns: Vec<String>,
    /// Extra IP addresses for every node certificate (`127.0.0.1` and `::1` are
    /// always included).
    pub node_ips: Vec<IpAddr>,
    /// One BOF certificate per force.
    pub forces: Vec<ForceId>,
    /// One user certificate per `(name, roles, force)`; names must be unique,
    /// since user files are named by user name alone.
    pub users: Vec<(String, Vec<Role>, ForceId)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_err(path))
}

/// Writes `contents` to `path`, replacing it. A `private` file gets mode 0600
/// on unix, set before anything is written, also when the file existed.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(io_err(path))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(path))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(contents.as_bytes()).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Writes a certificate (normal permissions) and its key (mode 0600 on unix),
/// replacing existing files. The parent directories must exist.
pub fn write_certified_key(
    cert_path: &Path,
    key_path: &Path,
    ck: &CertifiedKey,
) -> Result<(), PkiError> {
    // Key first: a certificate without its key is useless, the reverse is
    // merely incomplete.
    write_file(key_path, &ck.key_pem, true)?;
    write_file(cert_path, &ck.cert_pem, false)
}

fn check_unique<'a>(
    what: &'static str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), PkiError> {
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if seen.contains(&n) {
            return Err(PkiError::DuplicateInSpec {
                what,
                name: n.to_string(),
            });
        }
        seen.push(n);
    }
    Ok(())
}

/// Creates a complete development PKI in `dir`: a new CA, and the node, BOF
/// and user certificates of `spec`, in the layout of [`PkiLayout`].
///
/// Creates the directories as needed. Refuses (before writing anything) if
/// `dir/ca.key` exists, unless `force_overwrite`, in which case a new CA
/// replaces it and the listed certificates are replaced. Everything is issued
/// in memory before the first file is written, so a bad spec writes nothing.
pub fn init(dir: &Path, spec: &InitSpec, force_overwrite: bool) -> Result<PkiLayout, PkiError> {
    let layout = PkiLayout::new(dir);
    let ca_key = layout.ca_key();
    if !force_overwrite && ca_key.try_exists().map_err(io_err(&ca_key))? {
        return Err(PkiError::AlreadyExists(ca_key));
    }
    check_unique("node", spec.node_names.iter().map(String::as_str))?;
    check_unique("force", spec.forces.iter().map(ForceId::as_str))?;
    check_unique("user", spec.users.iter().map(|(n, _, _)| n.as_str()))?;

    let ca = DevCa::generate(DEV_CA_NAME)?;
    let mut files: Vec<(PathBuf, PathBuf, CertifiedKey)> = Vec::new();
    for name in &spec.node_names {
        let ck = ca.issue_node(name, &spec.node_dns, &spec.node_ips)?;
        files.push((layout.node_cert(name), layout.node_key(name), ck));
    }
    for force in &spec.forces {
        let ck = ca.issue_bof(force)?;
        files.push((layout.bof_cert(force), layout.bof_key(force), ck));
    }
    for (name, roles, force) in &spec.users {
        let ck = ca.issue_user(force, name, roles)?;
        files.push((layout.user_cert(name), layout.user_key(name), ck));
    }

    for sub in ["nodes", "bofs", "users"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(io_err(&d))?;
    }
    write_certified_key(
        &layout.ca_cert(),
        &ca_key,
        &CertifiedKey {
            cert_pem: ca.cert_pem(),
            key_pem: ca.key_pem(),
        },
    )?;
    for (cert, key, ck) in &files {
        write_certified_key(cert, key, ck)?;
    }
    Ok(layout)
}
