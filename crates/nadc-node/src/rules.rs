//! Who passes each RPC's gate: one table, checked in front of every service.
//!
//! [`crate::auth::AuthLayer`] looks every request's path up in [`RULES`]
//! before any service sees it. An RPC with no row is refused, so a new RPC
//! cannot be served until the table says who may call it; a caller outside
//! the row's [`Gate`] is refused (and audited) there. The services then
//! decide what the caller may see (force scope, purpose, case, data-age
//! tier) on the governed path (`crate::governance`); the gate is the first
//! of those checks, not the only one. `deploy/ACCESS.md` ("Every RPC")
//! states this table and `tests/roles.rs` calls every RPC as every kind of
//! caller against it.

use nadc_core::access::AccessPolicy;
use nadc_core::{Principal, Role};
use tonic::Status;

/// Who passes a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// A force's BOF (its own force's reads and cameras).
    Bof,
    /// Any authenticated principal.
    Anyone,
    /// Any user, whatever their roles.
    AnyUser,
    /// A user holding one of these roles.
    Roles(&'static [Role]),
    /// A user with a searching role, or a peer node relaying one (the
    /// service checks the relay against what that peer may relay).
    Searching,
    /// A user with one of the configured alerting roles, or a peer node
    /// relaying one (checked as for searches).
    Alerting,
    /// A user with one of these roles or an alerting role.
    RolesOrAlerting(&'static [Role]),
    /// A node certificate (the service checks which nodes).
    Node,
}

/// One RPC's row: its service and method as on the wire, and its gate.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The gRPC service, package included (`nadc.v1.Search`).
    pub service: &'static str,
    /// The method (`GeoSearch`).
    pub method: &'static str,
    /// Who passes.
    pub gate: Gate,
    /// The audit action a refusal at the gate is recorded under.
    pub action: &'static str,
}

const SEARCHING: Gate = Gate::Searching;
const SUPERVISOR: Gate = Gate::Roles(&[Role::Supervisor]);
const HOLDERS: Gate = Gate::Roles(&[Role::Supervisor, Role::Disclosure]);
const MANAGERS: Gate = Gate::Roles(&[Role::HotlistManager, Role::Admin]);

const fn rule(
    service: &'static str,
    method: &'static str,
    gate: Gate,
    action: &'static str,
) -> Rule {
    Rule {
        service,
        method,
        gate,
        action,
    }
}

/// Every RPC the node serves, and who passes its gate.
pub const RULES: &[Rule] = &[
    rule("nadc.v1.Ingest", "PushBatch", Gate::Bof, "ingest.push"),
    rule("nadc.v1.Ingest", "Push", Gate::Bof, "ingest.push"),
    rule("nadc.v1.Ingest", "PushStream", Gate::Bof, "ingest.push"),
    rule(
        "nadc.v1.Admin",
        "ImportCameras",
        Gate::Bof,
        "cameras.import",
    ),
    rule("nadc.v1.Admin", "ListCameras", Gate::Anyone, "cameras.list"),
    rule("nadc.v1.Admin", "NodeInfo", Gate::Anyone, "node.info"),
    rule("nadc.v1.Admin", "Snapshot", Gate::Node, "replica.snapshot"),
    rule(
        "nadc.v1.Admin",
        "RunRetention",
        Gate::Roles(&[Role::Admin]),
        "retention.run",
    ),
    rule(
        "nadc.v1.Search",
        "VrmTimeline",
        SEARCHING,
        "search.vrm_timeline",
    ),
    rule("nadc.v1.Search", "GeoSearch", SEARCHING, "search.geo"),
    rule("nadc.v1.Search", "VrmSearch", SEARCHING, "search.vrm"),
    rule(
        "nadc.v1.Search",
        "VehicleSearch",
        SEARCHING,
        "search.vehicle",
    ),
    rule("nadc.v1.Search", "CameraSearch", SEARCHING, "search.camera"),
    rule("nadc.v1.Search", "Convoy", SEARCHING, "search.convoy"),
    rule("nadc.v1.Search", "Clones", SEARCHING, "search.clones"),
    rule(
        "nadc.v1.Search",
        "HeldReads",
        SEARCHING,
        "search.held_reads",
    ),
    rule("nadc.v1.Analysis", "HotSpots", SEARCHING, "search.hotspots"),
    rule(
        "nadc.v1.Analysis",
        "CameraHealth",
        SEARCHING,
        "search.camera_health",
    ),
    rule("nadc.v1.Analysis", "Alibi", SEARCHING, "search.alibi"),
    rule(
        "nadc.v1.Analysis",
        "AssociateNetwork",
        SEARCHING,
        "search.network",
    ),
    rule(
        "nadc.v1.Analysis",
        "SubjectProfile",
        SEARCHING,
        "search.profile",
    ),
    rule(
        "nadc.v1.Analysis",
        "CrimePattern",
        SEARCHING,
        "search.pattern",
    ),
    rule("nadc.v1.Analysis", "Results", SEARCHING, "search.results"),
    rule("nadc.v1.Analysis", "CameraSites", SEARCHING, "search.sites"),
    rule(
        "nadc.v1.Analysis",
        "Transparency",
        Gate::Anyone,
        "report.transparency",
    ),
    rule(
        "nadc.v1.Hotlists",
        "CreateHotlist",
        MANAGERS,
        "hotlist.create",
    ),
    rule(
        "nadc.v1.Hotlists",
        "DeleteHotlist",
        MANAGERS,
        "hotlist.delete",
    ),
    rule("nadc.v1.Hotlists", "AddEntries", MANAGERS, "hotlist.add"),
    rule("nadc.v1.Hotlists", "SetRules", MANAGERS, "hotlist.rules"),
    rule(
        "nadc.v1.Hotlists",
        "RemoveEntries",
        MANAGERS,
        "hotlist.remove",
    ),
    rule(
        "nadc.v1.Hotlists",
        "ListHotlists",
        Gate::RolesOrAlerting(&[Role::HotlistManager, Role::Admin]),
        "hotlist.list",
    ),
    rule(
        "nadc.v1.Hotlists",
        "GetHotlist",
        Gate::RolesOrAlerting(&[Role::HotlistManager, Role::Admin]),
        "hotlist.show",
    ),
    rule("nadc.v1.Alerts", "Watch", Gate::Alerting, "alert.watch"),
    rule("nadc.v1.Alerts", "Verify", Gate::Alerting, "alert.verify"),
    rule(
        "nadc.v1.Authorisations",
        "Grant",
        SUPERVISOR,
        "authorisation.grant",
    ),
    rule(
        "nadc.v1.Authorisations",
        "Revoke",
        SUPERVISOR,
        "authorisation.revoke",
    ),
    rule(
        "nadc.v1.Authorisations",
        "ListAuthorisations",
        Gate::AnyUser,
        "authorisation.list",
    ),
    rule("nadc.v1.Holds", "Place", HOLDERS, "hold.place"),
    rule("nadc.v1.Holds", "Release", HOLDERS, "hold.release"),
    rule(
        "nadc.v1.Audit",
        "Verify",
        Gate::Roles(&[Role::Auditor]),
        "audit.verify",
    ),
    rule(
        "nadc.v1.Audit",
        "Query",
        Gate::Roles(&[Role::Auditor]),
        "audit.query",
    ),
    rule("nadc.v1.Disclosure", "MarkMaterial", SEARCHING, "case.mark"),
    rule("nadc.v1.Disclosure", "Schedule", SEARCHING, "case.schedule"),
    rule(
        "nadc.v1.Disclosure",
        "SetConsultation",
        Gate::Roles(&[Role::Disclosure]),
        "case.consultation",
    ),
    rule("nadc.v1.Disclosure", "Share", HOLDERS, "case.share"),
    // Health and reflection disclose no data: any authenticated caller.
    rule("grpc.health.v1.Health", "Check", Gate::Anyone, "health"),
    rule("grpc.health.v1.Health", "Watch", Gate::Anyone, "health"),
    rule(
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        Gate::Anyone,
        "reflection",
    ),
    rule(
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        Gate::Anyone,
        "reflection",
    ),
];

/// The row of a request path (`/service/method`), if the table has one.
pub fn rule_for(path: &str) -> Option<&'static Rule> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    RULES
        .iter()
        .find(|r| r.service == service && r.method == method)
}

/// The refusal of a path with no row: nothing is served without a rule.
pub fn unruled(path: &str) -> Status {
    Status::permission_denied(format!(
        "no access rule for {}: the node serves no RPC its rules table (nadc-node::rules) does not name",
        path.chars().take(128).collect::<String>()
    ))
}

fn names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Rule {
    /// Whether `who` passes this gate under `policy` (which names the
    /// alerting roles), or PERMISSION_DENIED naming the rule and the caller.
    pub fn admit(&self, who: &Principal, policy: &AccessPolicy) -> Result<(), Status> {
        // Built only for a refusal: every request passes here.
        let refuse = |needs: String| {
            Err(Status::permission_denied(format!(
                "{}.{} needs {needs}; caller is {who}",
                self.service.trim_start_matches("nadc.v1."),
                self.method
            )))
        };
        let user_roles = match who {
            Principal::User { roles, .. } => Some(roles.as_slice()),
            _ => None,
        };
        let holds =
            |wanted: &[Role]| user_roles.is_some_and(|r| r.iter().any(|r| wanted.contains(r)));
        let alerting = || user_roles.is_some_and(|r| policy.check_alerts(r).is_ok());
        match self.gate {
            Gate::Anyone => Ok(()),
            Gate::Bof if matches!(who, Principal::Bof { .. }) => Ok(()),
            Gate::Bof => refuse("a force BOF certificate (nadc://bof/<FORCE>)".into()),
            Gate::Node if matches!(who, Principal::Node { .. }) => Ok(()),
            Gate::Node => refuse("a node certificate (nadc://node/<NAME>)".into()),
            Gate::AnyUser if user_roles.is_some() => Ok(()),
            Gate::AnyUser => refuse("a user certificate".into()),
            Gate::Roles(wanted) if holds(wanted) => Ok(()),
            Gate::Roles(wanted) => refuse(format!(
                "a user with the {} role",
                names(wanted).replace(", ", " or ")
            )),
            Gate::Searching => match who {
                Principal::Node { .. } => Ok(()),
                Principal::User { roles, .. } if roles.iter().any(|r| r.may_search()) => Ok(()),
                Principal::User { roles, .. } => refuse(format!(
                    "a searching role (analyst, investigator, supervisor or disclosure; has: {})",
                    names(roles)
                )),
                Principal::Bof { .. } => refuse("a user certificate with a searching role".into()),
            },
            Gate::Alerting => match who {
                Principal::Node { .. } => Ok(()),
                _ if alerting() => Ok(()),
                _ => refuse(format!(
                    "a user with an alerting role ([access] alert_roles: {})",
                    names(&policy.alert_roles)
                )),
            },
            Gate::RolesOrAlerting(wanted) if holds(wanted) || alerting() => Ok(()),
            Gate::RolesOrAlerting(wanted) => refuse(format!(
                "a user with the {} role or an alerting role ({})",
                names(wanted).replace(", ", " or "),
                names(&policy.alert_roles)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_in_the_protos_has_exactly_one_row_and_no_row_is_stale() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(nadc_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut served = Vec::new();
        for file in &set.file {
            for s in &file.service {
                for m in &s.method {
                    served.push(format!("/{}.{}/{}", file.package(), s.name(), m.name()));
                }
            }
        }
        assert!(served.len() > 30, "{served:?}");
        for path in &served {
            let rows = RULES
                .iter()
                .filter(|r| format!("/{}/{}", r.service, r.method) == *path)
                .count();
            assert_eq!(rows, 1, "{path}: {rows} rows in RULES");
        }
        for r in RULES.iter().filter(|r| r.service.starts_with("nadc.")) {
            let path = format!("/{}/{}", r.service, r.method);
            assert!(
                served.contains(&path),
                "{path} is in RULES but not in proto/"
            );
        }
    }

    #[test]
    fn a_path_without_a_row_is_refused_by_name() {
        assert!(rule_for("/nadc.v1.Search/Everything").is_none());
        assert!(rule_for("garbage").is_none());
        let s = unruled("/nadc.v1.Search/Everything");
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert!(
            s.message().contains("/nadc.v1.Search/Everything"),
            "{}",
            s.message()
        );
        assert_eq!(
            rule_for("/nadc.v1.Search/GeoSearch").unwrap().gate,
            Gate::Searching
        );
    }
}
