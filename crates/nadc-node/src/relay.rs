//! Relayed requests: what a peer may relay, and the user a request relayed
//! by a peer acts for.
//!
//! A peer node relays a national search for one of its users, naming them
//! in `on_behalf_of`. The receiving node takes the relay only from the node
//! certificate of a configured peer, and only for a user of a force that
//! peer may relay (`[[peers]] relays`) holding roles it may relay
//! (`relay_roles`, by default the searching roles); anything else is
//! refused naming the rule, and logged with the peer. The user is then
//! known as `NAME@PEER`, under this node's own policy and audit.

use nadc_core::{ForceId, Principal, Role};
use nadc_proto::pb;
use tonic::Status;

use crate::federation::{Federation, PeerConfig};

/// The roles a peer may relay unless configured otherwise: those that
/// search.
pub fn default_relay_roles() -> Vec<Role> {
    Role::ALL.into_iter().filter(|r| relayable(*r)).collect()
}

/// The roles a node passes on for a user: those a peer needs to search
/// for them or to show them their force's alerts (a hotlist manager
/// watches its lists' hits nationally); their other roles stay at home.
fn relayable(r: Role) -> bool {
    r.may_search() || r == Role::HotlistManager
}

impl PeerConfig {
    /// Checks the entry; with CA bindings configured (`bound`), `relays`
    /// must be given.
    pub fn check(&self, bound: bool) -> Result<(), String> {
        if self.relays.is_none() && bound {
            return Err(format!(
                "peers: {}: with [[trust.issuers]] configured, each peer must say which forces' \
                 users it may relay (relays = [\"AVON\"], [\"*\"] for any, [] for none)",
                self.name
            ));
        }
        self.relay_rule().map(|_| ())
    }

    /// What this peer may relay.
    pub(crate) fn relay_rule(&self) -> Result<RelayRule, String> {
        let at = || format!("peers: {}: relays", self.name);
        let forces = match &self.relays {
            None => None,
            Some(all) if all.iter().any(|f| f == "*") => {
                if all.len() > 1 {
                    return Err(format!("{}: either [\"*\"] or force codes", at()));
                }
                None
            }
            Some(codes) => Some(
                codes
                    .iter()
                    .map(|f| ForceId::new(f).map_err(|e| format!("{}: {e}", at())))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(RelayRule {
            forces,
            roles: self.relay_roles.clone(),
        })
    }
}

/// What a peer may relay: users of these forces (`None`: any), holding
/// only these roles.
#[derive(Clone, Debug)]
pub(crate) struct RelayRule {
    forces: Option<Vec<ForceId>>,
    roles: Vec<Role>,
}

/// Why a relayed request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The calling node is not a configured peer.
    #[error("node {node} is not a configured peer of this node")]
    NotPeer {
        /// The calling node.
        node: String,
    },
    /// A node called without naming the user it relays for.
    #[error("node {node} relayed a search without its user")]
    NoUser {
        /// The calling node.
        node: String,
    },
    /// The relayed user is malformed.
    #[error("{0}")]
    BadUser(String),
    /// The peer may not relay users of that force.
    #[error(
        "relay rule: peer {node} may relay users of {allowed} only ([[peers]] relays), not user {user} of {force}"
    )]
    ForceNotRelayed {
        /// The calling node.
        node: String,
        /// The forces it may relay.
        allowed: String,
        /// The relayed user.
        user: String,
        /// Their force.
        force: ForceId,
    },
    /// The peer may not relay a user holding that role.
    #[error(
        "relay rule: peer {node} may relay users holding the roles {allowed} only ([[peers]] relay_roles), not {role} (user {user} of {force})"
    )]
    RoleNotRelayed {
        /// The calling node.
        node: String,
        /// The roles it may relay.
        allowed: String,
        /// The role it may not.
        role: Role,
        /// The relayed user.
        user: String,
        /// Their force.
        force: ForceId,
    },
}

impl From<RelayError> for Status {
    fn from(e: RelayError) -> Self {
        match e {
            RelayError::NoUser { .. } | RelayError::BadUser(_) => {
                Status::invalid_argument(e.to_string())
            }
            RelayError::NotPeer { .. }
            | RelayError::ForceNotRelayed { .. }
            | RelayError::RoleNotRelayed { .. } => Status::permission_denied(e.to_string()),
        }
    }
}

/// The relayed user, if the caller is a configured peer relaying one;
/// `Ok(None)` if the caller is not a node. Refused: a node that is not a
/// peer, a relay naming no user or a malformed one, a user of a force the
/// peer may not relay, or holding a role it may not relay.
pub fn relayed_user(
    federation: Option<&Federation>,
    caller: &Principal,
    on_behalf_of: Option<&pb::OnBehalfOf>,
) -> Result<Option<Principal>, RelayError> {
    let Principal::Node { name } = caller else {
        return Ok(None);
    };
    let relayed = check_relay(federation, name, on_behalf_of);
    if let Err(e) = &relayed {
        tracing::warn!(peer = %name, reason = %e, "relayed request refused");
    }
    relayed.map(Some)
}

fn check_relay(
    federation: Option<&Federation>,
    name: &str,
    on_behalf_of: Option<&pb::OnBehalfOf>,
) -> Result<Principal, RelayError> {
    let rule = federation
        .and_then(|f| f.relay_rule(name))
        .ok_or_else(|| RelayError::NotPeer { node: name.into() })?;
    let u = on_behalf_of.ok_or_else(|| RelayError::NoUser { node: name.into() })?;
    if !u.via_node.is_empty() && u.via_node != name {
        return Err(RelayError::BadUser(format!(
            "relayed via node {:?}, but the caller is node {name}",
            u.via_node
        )));
    }
    nadc_core::identity::validate_name(&u.user)
        .map_err(|e| RelayError::BadUser(format!("relayed user's name: {e}")))?;
    let force = ForceId::new(&u.force)
        .map_err(|e| RelayError::BadUser(format!("relayed user's force: {e}")))?;
    if let Some(allowed) = &rule.forces
        && !allowed.contains(&force)
    {
        return Err(RelayError::ForceNotRelayed {
            node: name.into(),
            allowed: if allowed.is_empty() {
                "no force".into()
            } else {
                allowed
                    .iter()
                    .map(ForceId::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            user: u.user.clone(),
            force,
        });
    }
    let roles = u
        .roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RelayError::BadUser(format!("relayed user's roles: {e}")))?;
    if let Some(role) = roles.iter().find(|r| !rule.roles.contains(r)) {
        return Err(RelayError::RoleNotRelayed {
            node: name.into(),
            allowed: rule
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            role: *role,
            user: u.user.clone(),
            force,
        });
    }
    Ok(Principal::User {
        force,
        name: format!("{}@{}", u.user, name),
        roles,
    })
}

/// The identity a node relays for a local user: their name, force and
/// relayable roles (searching, and hotlist-manager for alerts: what a peer
/// needs, and all it relays by default; their other roles stay at home).
pub fn on_behalf_of(caller: &Principal, via: &str) -> Option<pb::OnBehalfOf> {
    match caller {
        Principal::User { force, name, roles } => Some(pb::OnBehalfOf {
            user: name.clone(),
            force: force.to_string(),
            roles: roles
                .iter()
                .filter(|r| relayable(**r))
                .map(|r| r.as_str().to_string())
                .collect(),
            via_node: via.to_string(),
        }),
        _ => None,
    }
}
