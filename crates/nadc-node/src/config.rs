//! Node configuration: TOML into a strict struct, validated once.
//!
//! ```toml
//! listen = "127.0.0.1:7443"
//! data_dir = "/var/lib/nadc"
//! retention_days = 365
//!
//! [tls]
//! ca = "/etc/nadc/pki/ca.crt"
//! cert = "/etc/nadc/pki/nodes/national-1.crt"
//! key = "/etc/nadc/pki/nodes/national-1.key"
//! crl = "/etc/nadc/pki/crl.pem"     # optional; or a list of files
//!
//! [[trust.issuers]]                 # optional: what each CA may issue
//! ca = "/etc/nadc/pki/kent-ca.crt"
//! issues = ["bof", "user"]
//! forces = ["KENT"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read config {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("parse config {path}: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("config: {0}")]
    Invalid(String),
}

/// TLS files of a node: PEM paths.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate(s) that client and peer certificates must chain to.
    pub ca: PathBuf,
    /// The node's certificate chain.
    pub cert: PathBuf,
    /// The node's private key.
    pub key: PathBuf,
    /// Certificate revocation lists (PEM) to refuse revoked client and
    /// peer certificates by: `crl = "crl.pem"` or a list of paths, one or
    /// more CRLs per file. Each must be signed by a CA in `ca`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub crl: Vec<PathBuf>,
}

/// A path or a list of paths.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

/// A node's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Address to listen on (port 0 picks a free port).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// RocksDB data directory.
    pub data_dir: PathBuf,
    /// TLS files.
    pub tls: TlsFiles,
    /// What each CA in the `tls.ca` bundle may issue (none bound: every CA
    /// may issue everything).
    #[serde(default)]
    pub trust: crate::trust::TrustConfig,
    /// Reads older than this many days are refused at ingest (and, later,
    /// deleted).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// How far in the future (seconds, by the node's clock) a capture time
    /// may be before the read is refused, to allow for camera clock skew.
    #[serde(default = "default_future_tolerance_s")]
    pub future_tolerance_s: u32,
    /// Most reads in one batch.
    #[serde(default = "default_max_batch_reads")]
    pub max_batch_reads: usize,
    /// Most rows a search returns when the request names no limit.
    #[serde(default = "default_search_limit")]
    pub default_search_limit: usize,
    /// Most rows a search may ask for.
    #[serde(default = "default_max_search_limit")]
    pub max_search_limit: usize,
    /// Caps on how broad a search may be without `allow_broad`.
    #[serde(default)]
    pub search_caps: SearchCaps,
    /// Real-time alerting: clone checks and convoy analysis on hits.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Lawful access: purposes and data-age tiers.
    #[serde(default)]
    pub access: AccessConfig,
    /// Retention passes: per-force periods and how often.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// Peer nodes national searches fan out to.
    #[serde(default)]
    pub peers: Vec<crate::federation::PeerConfig>,
    /// How long a national search waits for a peer, milliseconds.
    #[serde(default = "default_federation_deadline_ms")]
    pub federation_deadline_ms: u64,
    /// Ask a peer's replica as well when the peer has not begun to answer
    /// a national search within this many milliseconds (hedging; the first
    /// to answer is kept). Unset: a replica is asked only when its peer
    /// fails before answering.
    #[serde(default)]
    pub federation_hedge_ms: Option<u64>,
    /// Calls in flight to one peer at once; more wait their turn within
    /// their deadline.
    #[serde(default = "default_federation_peer_concurrency")]
    pub federation_peer_concurrency: usize,
    /// Overload protection: message sizes, streams, ingest slots, rates.
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// Memory for the store's cache of uncompressed blocks, MiB: searches
    /// whose blocks are cached skip reading and decompressing them. About a
    /// third of the machine's memory on a dedicated node.
    #[serde(default = "default_block_cache_mb")]
    pub block_cache_mb: usize,
    /// Replicated mode: NATS JetStream as the log in front of the store
    /// (absent: the embedded single-node mode).
    #[serde(default)]
    pub replication: Option<crate::replication::ReplicationConfig>,
    /// Where to serve the Prometheus metrics (plain HTTP, `GET /metrics`;
    /// none: not served). Bind it to localhost or a management network.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_block_cache_mb() -> usize {
    1024
}

fn default_federation_peer_concurrency() -> usize {
    32
}

fn default_federation_deadline_ms() -> u64 {
    3000
}

/// Lawful-access rules: which purposes a search may give, and how old data
/// may be before a supervisor's authorisation is needed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Purpose codes a search may give.
    pub purposes: Vec<String>,
    /// Data up to this many days old needs only a purpose and a case.
    pub standard_days: u32,
    /// Purposes under which older data may be authorised.
    pub extended_purposes: Vec<String>,
    /// Roles that may lift the caps on broad searches (`allow_broad`).
    pub broad_roles: Vec<nadc_core::Role>,
    /// Roles that may search nationally (fanned out to the peers).
    pub national_roles: Vec<nadc_core::Role>,
    /// Roles that may watch and verify alerts.
    pub alert_roles: Vec<nadc_core::Role>,
    /// Alerts raised within this many minutes are live (no case needed to
    /// see them); older ones are history, replayed under a purpose and case.
    pub alert_live_minutes: u32,
    /// An authorisation may lapse at most this many days after its grant
    /// (a grant with a later expiry is refused).
    pub max_authorisation_days: u32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        let p = nadc_core::access::AccessPolicy::default();
        Self {
            purposes: p.purposes,
            standard_days: p.standard_days,
            extended_purposes: p.extended_purposes,
            broad_roles: p.broad_roles,
            national_roles: p.national_roles,
            alert_roles: p.alert_roles,
            alert_live_minutes: p.alert_live_minutes,
            max_authorisation_days: p.max_authorisation_days,
        }
    }
}

impl NodeConfig {
    /// The access policy the node enforces.
    pub fn access_policy(&self) -> nadc_core::access::AccessPolicy {
        nadc_core::access::AccessPolicy {
            purposes: self.access.purposes.clone(),
            standard_days: self.access.standard_days,
            extended_purposes: self.access.extended_purposes.clone(),
            retention_days: self.retention_days,
            broad_roles: self.access.broad_roles.clone(),
            national_roles: self.access.national_roles.clone(),
            alert_roles: self.access.alert_roles.clone(),
            alert_live_minutes: self.access.alert_live_minutes,
            max_authorisation_days: self.access.max_authorisation_days,
        }
    }
}

/// What the node checks every ingested read for, beyond hotlists (which
/// are always matched).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Check every read against the same VRM's nearest earlier and later
    /// reads for an impossible speed (a cloned plate or a misread).
    pub clone_check: bool,
    /// Speed above which two reads of one VRM are flagged, km/h.
    pub clone_max_speed_kmh: f64,
    /// Reads closer than this are never flagged (GPS jitter, two cameras
    /// at one site), metres.
    pub clone_min_distance_m: f64,
    /// How far either side of a read to look for the same VRM, seconds.
    pub clone_look_back_s: u32,
    /// Reads kept in memory for the clone check (the newest captured: their
    /// VRM, time, position and sequence number, about 60 bytes each), so
    /// that a read whose neighbours are among them costs no store lookup; 0
    /// keeps none. Best with room for clone_look_back_s of the node's
    /// ingest, and for the backlog of a BOF catching up.
    pub clone_recent_reads: usize,
    /// Real-time convoy analysis on hits of entries flagged for it: how far
    /// back to look at the target's reads, seconds.
    pub convoy_look_back_s: u32,
    /// Companion read within this many seconds of the target at a camera.
    pub convoy_window_s: u32,
    /// Co-occurrences a companion needs to be named in a convoy alert.
    pub convoy_min_count: u32,
    /// Companions named in one convoy alert.
    pub convoy_max_companions: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            clone_check: true,
            clone_max_speed_kmh: 250.0,
            clone_min_distance_m: 2_000.0,
            clone_look_back_s: 6 * 3600,
            clone_recent_reads: 4_000_000,
            convoy_look_back_s: 24 * 3600,
            convoy_window_s: 120,
            convoy_min_count: 2,
            convoy_max_companions: 10,
        }
    }
}

/// Caps on over-broad searches. A request beyond them is refused with a
/// clear error unless it asks for `allow_broad`; `max_candidates` always
/// applies (it protects the node's memory).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchCaps {
    /// Areas in one geographic search.
    pub max_areas: usize,
    /// Radius of one area, metres.
    pub max_radius_m: f64,
    /// Length of one area's or camera search's window, hours.
    pub max_window_hours: u32,
    /// Cameras in one camera search.
    pub max_cameras: usize,
    /// Candidate reads a geographic search may examine.
    pub max_candidates: usize,
    /// Distinct VRMs a wildcard or fuzzy VRM search may match.
    pub max_vrms: usize,
}

impl Default for SearchCaps {
    fn default() -> Self {
        Self {
            max_areas: 10,
            max_radius_m: 20_000.0,
            max_window_hours: 24 * 31,
            max_cameras: 50,
            max_candidates: 2_000_000,
            max_vrms: 10_000,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7443))
}
fn default_retention_days() -> u32 {
    365
}
fn default_future_tolerance_s() -> u32 {
    300
}
fn default_max_batch_reads() -> usize {
    10_000
}
fn default_search_limit() -> usize {
    10_000
}
fn default_max_search_limit() -> usize {
    1_000_000
}

impl NodeConfig {
    /// A configuration with defaults for everything but the paths.
    pub fn new(data_dir: PathBuf, tls: TlsFiles) -> Self {
        Self {
            listen: default_listen(),
            data_dir,
            tls,
            trust: crate::trust::TrustConfig::default(),
            retention_days: default_retention_days(),
            future_tolerance_s: default_future_tolerance_s(),
            max_batch_reads: default_max_batch_reads(),
            default_search_limit: default_search_limit(),
            max_search_limit: default_max_search_limit(),
            search_caps: SearchCaps::default(),
            alerts: AlertsConfig::default(),
            access: AccessConfig::default(),
            retention: crate::retention::RetentionConfig::default(),
            peers: Vec::new(),
            federation_deadline_ms: default_federation_deadline_ms(),
            federation_hedge_ms: None,
            federation_peer_concurrency: default_federation_peer_concurrency(),
            limits: crate::limits::LimitsConfig::default(),
            block_cache_mb: default_block_cache_mb(),
            replication: None,
            metrics_listen: None,
        }
    }

    /// Reads and validates a TOML file. Relative paths in it are taken
    /// relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(base) = path.parent() {
            for p in [
                &mut cfg.data_dir,
                &mut cfg.tls.ca,
                &mut cfg.tls.cert,
                &mut cfg.tls.key,
            ]
            .into_iter()
            .chain(&mut cfg.tls.crl)
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
            cfg.trust.resolve_paths(base);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=36_500).contains(&self.retention_days) {
            return Err(ConfigError::Invalid(format!(
                "retention_days {} must be 1 to 36500",
                self.retention_days
            )));
        }
        if !(1..=100_000).contains(&self.max_batch_reads) {
            return Err(ConfigError::Invalid(format!(
                "max_batch_reads {} must be 1 to 100000",
                self.max_batch_reads
            )));
        }
        if self.default_search_limit == 0 || self.default_search_limit > self.max_search_limit {
            return Err(ConfigError::Invalid(
                "default_search_limit must be above 0 and at most max_search_limit".into(),
            ));
        }
        for (force, days) in &self.retention.per_force_days {
            if nadc_core::ForceId::new(force).is_err() || !(1..=36_500).contains(days) {
                return Err(ConfigError::Invalid(format!(
                    "retention.per_force_days: {force} = {days}: a force code and 1 to 36500 days"
                )));
            }
        }
        let x = &self.access;
        if x.purposes.is_empty()
            || x.standard_days == 0
            || x.standard_days > self.retention_days
            || x.extended_purposes.iter().any(|p| !x.purposes.contains(p))
        {
            return Err(ConfigError::Invalid(
                "access: purposes must not be empty, standard_days must be 1 to retention_days, and every extended purpose must be a purpose".into(),
            ));
        }
        if !(1..=self.retention_days).contains(&x.max_authorisation_days) {
            return Err(ConfigError::Invalid(format!(
                "access.max_authorisation_days = {}: must be 1 to retention_days ({})",
                x.max_authorisation_days, self.retention_days
            )));
        }
        self.limits.validate().map_err(ConfigError::Invalid)?;
        self.trust.validate().map_err(ConfigError::Invalid)?;
        for p in &self.peers {
            p.check(self.trust.is_bound())
                .map_err(ConfigError::Invalid)?;
        }
        if self.federation_deadline_ms == 0
            || self.federation_peer_concurrency == 0
            || self
                .federation_hedge_ms
                .is_some_and(|h| h == 0 || h >= self.federation_deadline_ms)
        {
            return Err(ConfigError::Invalid(
                "federation_deadline_ms and federation_peer_concurrency must be above 0, and federation_hedge_ms above 0 and below the deadline".into(),
            ));
        }
        let a = &self.alerts;
        if !(a.clone_max_speed_kmh.is_finite() && a.clone_max_speed_kmh > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "alerts.clone_max_speed_kmh {} must be above 0",
                a.clone_max_speed_kmh
            )));
        }
        if !(a.clone_min_distance_m.is_finite() && a.clone_min_distance_m >= 0.0) {
            return Err(ConfigError::Invalid(format!(
                "alerts.clone_min_distance_m {} must be 0 or more",
                a.clone_min_distance_m
            )));
        }
        if !(1..=3600).contains(&a.convoy_window_s) || a.convoy_min_count == 0 {
            return Err(ConfigError::Invalid(
                "alerts.convoy_window_s must be 1 to 3600 and alerts.convoy_min_count at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses_and_validates() {
        let cfg: NodeConfig = toml::from_str(include_str!("../../../deploy/node.toml")).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.access.standard_days, 90);
        assert_eq!(cfg.access.broad_roles, vec![nadc_core::Role::Supervisor]);
        assert!(cfg.alerts.clone_check);
        assert_eq!(cfg.retention.interval_s, 3600);
        assert_eq!(cfg.limits.ingest_concurrency, 16);
        // Metrics on localhost, never on the node's public address.
        assert!(cfg.metrics_listen.is_some_and(|a| a.ip().is_loopback()));
        assert_eq!(cfg.federation_peer_concurrency, 32);
        assert_eq!(cfg.tls.crl, vec![PathBuf::from("/etc/nadc/pki/crl.pem")]);
    }

    #[test]
    fn parses_with_defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\n[tls]\nca = \"pki/ca.crt\"\ncert = \"n.crt\"\nkey = \"/abs/n.key\"\n",
        )
        .unwrap();
        let cfg = NodeConfig::from_file(&path).unwrap();
        assert_eq!(cfg.retention_days, 365);
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert_eq!(cfg.tls.key, PathBuf::from("/abs/n.key"));
        assert!(cfg.tls.crl.is_empty(), "no CRL unless configured");
    }

    #[test]
    fn crl_is_one_path_or_a_list_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let tls = "ca = \"a\"\ncert = \"b\"\nkey = \"c\"\n";
        std::fs::write(
            &path,
            format!("data_dir = \"d\"\n[tls]\n{tls}crl = \"pki/crl.pem\"\n"),
        )
        .unwrap();
        let cfg = NodeConfig::from_file(&path).unwrap();
        assert_eq!(cfg.tls.crl, vec![dir.path().join("pki/crl.pem")]);
        std::fs::write(
            &path,
            format!("data_dir = \"d\"\n[tls]\n{tls}crl = [\"x.pem\", \"/abs/y.pem\"]\n"),
        )
        .unwrap();
        let cfg = NodeConfig::from_file(&path).unwrap();
        assert_eq!(
            cfg.tls.crl,
            vec![dir.path().join("x.pem"), PathBuf::from("/abs/y.pem")]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "data_dir = \"d\"\nretension_days = 3\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n",
        )
        .unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("retension_days"), "{e}");
        std::fs::write(
            &path,
            "data_dir = \"d\"\nretention_days = 0\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n",
        )
        .unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("retention_days 0"), "{e}");
        // A hedge no sooner than the deadline would never fire.
        std::fs::write(
            &path,
            "data_dir = \"d\"\nfederation_deadline_ms = 1000\nfederation_hedge_ms = 1000\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n",
        )
        .unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("federation_hedge_ms"), "{e}");
    }

    #[test]
    fn the_authorisation_cap_is_read_and_checked() {
        let cfg: NodeConfig = toml::from_str(include_str!("../../../deploy/node.toml")).unwrap();
        assert_eq!(cfg.access.max_authorisation_days, 30);
        assert_eq!(cfg.access_policy().max_authorisation_days, 30);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let tls = "[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n";
        std::fs::write(
            &path,
            format!("data_dir = \"d\"\n[access]\nmax_authorisation_days = 7\n{tls}"),
        )
        .unwrap();
        let cfg = NodeConfig::from_file(&path).unwrap();
        assert_eq!(cfg.access_policy().max_authorisation_days, 7);
        std::fs::write(
            &path,
            format!("data_dir = \"d\"\n[access]\nmax_authorisation_days = 0\n{tls}"),
        )
        .unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("max_authorisation_days"), "{e}");
    }

    #[test]
    fn trust_bindings_are_relative_to_the_file_and_peers_must_then_say_what_they_relay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let base = "data_dir = \"d\"\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n\
                    [[trust.issuers]]\nca = \"kent.crt\"\nissues = [\"bof\", \"user\"]\n\
                    forces = [\"KENT\"]\n[[peers]]\nname = \"node-2\"\naddress = \"https://n2:1\"\n";
        std::fs::write(&path, format!("{base}relays = [\"KENT\"]\n")).unwrap();
        let cfg = NodeConfig::from_file(&path).unwrap();
        assert_eq!(cfg.trust.issuers[0].ca, dir.path().join("kent.crt"));
        assert_eq!(cfg.peers[0].relays, Some(vec!["KENT".to_string()]));
        assert_eq!(
            cfg.peers[0].relay_roles,
            crate::relay::default_relay_roles()
        );
        // With CAs bound, a peer that does not say whose users it relays
        // is refused, naming it.
        std::fs::write(&path, base).unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("node-2") && e.contains("relays"), "{e}");
        std::fs::write(&path, format!("{base}relays = [\"kent-1\"]\n")).unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("relays") && e.contains("kent-1"), "{e}");
        // A binding that cannot mean what it says is refused at load.
        std::fs::write(
            &path,
            format!("{}relays = []\n", base.replace("forces = [\"KENT\"]\n", "")),
        )
        .unwrap();
        let e = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("for which forces"), "{e}");
    }
}
