//! The development PKI's files on disk.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nadc_core::{ForceId, Role};

use crate::PkiError;
use crate::ca::{CertifiedKey, DevCa};

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

    /// Loads the CA from `ca.crt` and `ca.key`, to issue more certificates.
    pub fn load_ca(&self) -> Result<DevCa, PkiError> {
        let cert = read(&self.ca_cert())?;
        let key = read(&self.ca_key())?;
        DevCa::from_pem(&cert, &key)
    }
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
