//! Who is acting: forces (law-enforcement agencies), and the principals that
//! authenticate to a node (nodes, force BOFs and users with roles).
//!
//! A [`ForceId`] in a stored read always comes from the authenticated
//! identity of the BOF that pushed it, never from a payload.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identity string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A force code must be 2 to 16 characters of A-Z, 0-9 or `_`.
    #[error("invalid force code {0:?}: use 2 to 16 characters A-Z, 0-9 or _")]
    BadForce(String),
    /// A role name not in the role model.
    #[error("unknown role {0:?}: expected one of {roles}", roles = Role::ALL_NAMES.join(", "))]
    BadRole(String),
    /// A user or node name must be 1 to 64 characters of a-z, A-Z, 0-9, `.`, `_` or `-`.
    #[error("invalid name {0:?}: use 1 to 64 characters a-z, A-Z, 0-9, '.', '_' or '-'")]
    BadName(String),
}

/// A law-enforcement agency's code, e.g. `AVON`, `KENT`, `MET`.
///
/// Always upper case; 2 to 16 characters of `A-Z`, `0-9`, `_`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ForceId(String);

impl ForceId {
    /// Parses and validates a force code. Lower case is accepted and upper-cased.
    pub fn new(code: &str) -> Result<Self, IdentityError> {
        let up = code.trim().to_ascii_uppercase();
        let ok = (2..=16).contains(&up.len())
            && up
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(up))
        } else {
            Err(IdentityError::BadForce(code.to_string()))
        }
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ForceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ForceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ForceId({})", self.0)
    }
}

impl FromStr for ForceId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ForceId {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<ForceId> for String {
    fn from(f: ForceId) -> String {
        f.0
    }
}

/// A user's role. Roles decide what a user may do on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs searches and analyses.
    Analyst,
    /// Runs searches for an investigation.
    Investigator,
    /// May authorise access to older data.
    Supervisor,
    /// Keeps case registers and disclosure schedules.
    Disclosure,
    /// Manages hotlists.
    HotlistManager,
    /// Reads the audit log.
    Auditor,
    /// Administers the node (cameras, configuration).
    Admin,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 7] = [
        Role::Analyst,
        Role::Investigator,
        Role::Supervisor,
        Role::Disclosure,
        Role::HotlistManager,
        Role::Auditor,
        Role::Admin,
    ];
    /// The names of every role, as written in certificates and config.
    pub const ALL_NAMES: [&'static str; 7] = [
        "analyst",
        "investigator",
        "supervisor",
        "disclosure",
        "hotlist-manager",
        "auditor",
        "admin",
    ];

    /// The role's name as written in certificates and config.
    pub fn as_str(self) -> &'static str {
        Self::ALL_NAMES[self as usize]
    }

    /// Whether this role may run searches.
    pub fn may_search(self) -> bool {
        matches!(
            self,
            Role::Analyst | Role::Investigator | Role::Supervisor | Role::Disclosure
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL_NAMES
            .iter()
            .position(|n| *n == lower)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| IdentityError::BadRole(s.to_string()))
    }
}

/// Checks a user or node name.
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName(name.to_string()))
    }
}

/// An authenticated party, as read from its client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Another nadc node (federation peer), or this node's own server identity.
    Node {
        /// The node's name.
        name: String,
    },
    /// A force's back office facility: may push reads and manage its cameras.
    Bof {
        /// The force whose reads this BOF pushes.
        force: ForceId,
    },
    /// A person, belonging to an agency, holding roles.
    User {
        /// The user's agency.
        force: ForceId,
        /// The user's name, unique within the agency.
        name: String,
        /// The user's roles.
        roles: Vec<Role>,
    },
}

impl Principal {
    /// The agency this principal acts for, if any (nodes act for none).
    pub fn force(&self) -> Option<&ForceId> {
        match self {
            Principal::Node { .. } => None,
            Principal::Bof { force } | Principal::User { force, .. } => Some(force),
        }
    }

    /// A short description for logs and error messages, e.g. `bof AVON`.
    pub fn describe(&self) -> String {
        match self {
            Principal::Node { name } => format!("node {name}"),
            Principal::Bof { force } => format!("bof {force}"),
            Principal::User { force, name, .. } => format!("user {name} of {force}"),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_codes() {
        assert_eq!(ForceId::new("avon").unwrap().as_str(), "AVON");
        assert_eq!(ForceId::new("WEST_MIDS").unwrap().as_str(), "WEST_MIDS");
        for bad in ["", "A", "AV ON", "AVON-1", "ÄVON", "ABCDEFGHIJKLMNOPQ"] {
            assert!(ForceId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let err = "wizard".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("wizard") && err.contains("analyst"), "{err}");
    }

    #[test]
    fn names() {
        assert!(validate_name("alice.smith-2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("a/b").is_err());
    }
}
