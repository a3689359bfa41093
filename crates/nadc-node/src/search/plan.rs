//! Planning a search: who asks and why (purpose, case, data-age tier),
//! what (validated, bounded, for the audit), and the windows permitted.

use std::sync::Arc;

use nadc_core::geo::Polygon;
use nadc_core::vrm_match::{ConfusableGroups, Pattern};
use nadc_core::{Circle, ForceId, GeoPoint, Principal, Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::{
    Area, AreaMatch, CameraQuery, Details, GeoQuery, QueryError, Shape, VehicleQuery, VrmQuery,
};
use tonic::{Request, Status};

use crate::auth::caller;
use crate::federation::relayed_user;
use crate::governance::{Actor, Audited, Governance};
use nadc_core::access::AccessContext;
use nadc_core::audit::Outcome;
use serde_json::json;

use super::local::TimelineQuery;
use super::local::Watched;
use super::{SearchService, required_time};
use crate::error::ServiceError;

/// A search being planned: who asks, why, what (for the audit), and the
/// windows the access rules permit.
pub struct Plan {
    pub(super) actor: Actor,
    pub(super) access: AccessContext,
    pub(super) clip: bool,
    pub(super) governance: Arc<Governance>,
    /// The earliest start asked for that was clipped, if any.
    pub(super) clipped_from: Option<Timestamp>,
    /// The request, for the audit.
    pub(super) query: serde_json::Value,
    /// The instant the search is planned at: its default window and its
    /// access checks use the same one.
    pub(super) now: Timestamp,
    /// The case searched under, once checked (`crate::cases`).
    pub(super) case: Option<crate::cases::CaseId>,
    /// The node that relayed the search for its user, if any: the audit
    /// names it (`"via"` in the query), so a national search is counted
    /// once, where it was asked (`crate::reports`).
    pub(super) via: Option<String>,
}

impl Plan {
    /// Whose open searches this one counts among: force and name.
    pub(super) fn user_key(&self) -> String {
        let force = self.actor.force.as_ref().map_or("-", |f| f.as_str());
        format!("{force}/{}", self.actor.user)
    }

    /// The permitted part of `from..=to` (possibly clipped, noted).
    pub(super) fn permit(
        &mut self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Timestamp, Timestamp), ServiceError> {
        let p = self
            .governance
            .permit(&self.actor, &self.access, self.clip, from, to, self.now)?;
        if let Some(c) = p.clipped_from {
            self.clipped_from = Some(self.clipped_from.map_or(c, |x| x.min(c)));
        }
        // Nothing older than retention is searched: what is left of it is
        // awaiting deletion or under a legal hold, and held material is
        // reached by its case (`HeldReads`), not by searches.
        let retained = self.now.minus_days(self.governance.policy.retention_days);
        Ok((p.from.max(retained), p.to))
    }

    /// Notes in the audited query the camera rows an answer discloses
    /// besides its reads (a camera's position, reads counted, last read),
    /// per camera's force: `"camera_rows": {"AVON": 2}`.
    pub(super) fn note_cameras<'a>(&mut self, forces: impl Iterator<Item = &'a str>) {
        let mut counts = std::collections::BTreeMap::<&str, u64>::new();
        for f in forces {
            *counts.entry(f).or_default() += 1;
        }
        if counts.is_empty() {
            return;
        }
        if self.query.is_null() {
            self.query = json!({});
        }
        if let serde_json::Value::Object(q) = &mut self.query {
            q.insert("camera_rows".into(), json!(counts));
        }
    }

    /// The earliest instant this search's context may see: the data-age
    /// tiers as its purpose and any authorisation allow, and retention. A
    /// search's own window is checked by [`Plan::permit`]; this bounds what
    /// it looks at besides (a camera's usual rate before the window).
    pub(super) fn floor(&self) -> Timestamp {
        let far = self.now.minus_days(36_500);
        let retained = self.now.minus_days(self.governance.policy.retention_days);
        self.governance
            .permit(&self.actor, &self.access, true, far, self.now, self.now)
            .map_or(self.now, |p| p.from)
            .max(retained)
    }

    /// Refuses `allow_broad` from a caller without a role that may use it.
    pub(super) fn broad(&self, allow_broad: bool) -> Result<(), ServiceError> {
        if !allow_broad {
            return Ok(());
        }
        self.governance
            .policy
            .check_broad(&self.actor.roles)
            .map_err(|e| ServiceError::denied(e.to_string()))
    }

    /// Writes the search's opening entry (who, purpose, case, query):
    /// durable when this returns, before any row leaves.
    pub(super) fn open_blocking(&self, search: &str) -> Result<u64, Status> {
        let g = &self.governance;
        g.record_blocking(g.entry(
            &self.actor,
            &format!("search.{search}.opened"),
            &self.audited(Vec::new()),
            Outcome::Ok,
        ))
    }

    /// The search's closing audit entry: what it returned per owning
    /// force, and how it ended.
    pub(super) fn closing(
        &self,
        search: &str,
        returned: Vec<(ForceId, u64)>,
        outcome: Outcome,
    ) -> nadc_core::audit::AuditEntry {
        self.governance.entry(
            &self.actor,
            &format!("search.{search}"),
            &self.audited(returned),
            outcome,
        )
    }

    pub(super) fn audited(&self, returned: Vec<(ForceId, u64)>) -> Audited {
        let mut query = self.query.clone();
        if self.via.is_some() && query.is_null() {
            query = json!({});
        }
        if let (Some(via), serde_json::Value::Object(q)) = (&self.via, &mut query) {
            q.insert("via".into(), serde_json::Value::String(via.clone()));
        }
        Audited {
            access: self.access.clone(),
            query,
            returned,
        }
    }
}

pub(super) fn time_json(t: Option<&prost_types::Timestamp>) -> serde_json::Value {
    t.and_then(proto::from_pb_time)
        .map_or(serde_json::Value::Null, |t| json!(t.to_rfc3339()))
}

pub(super) fn areas_json(areas: &[pb::Area]) -> serde_json::Value {
    areas
        .iter()
        .map(|a| {
            json!({"lat": a.lat, "lon": a.lon, "radius_m": a.radius_m, "polygon": a.polygon,
                "from": time_json(a.from.as_ref()), "to": time_json(a.to.as_ref())})
        })
        .collect()
}

impl SearchService {
    /// An analysis's window, `from` to `to` (by default the last 24 hours
    /// to now), checked as [`check_window`](Self::check_window) checks.
    pub(super) fn analysis_window(
        &self,
        plan: &mut Plan,
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
        what: &str,
        allow_broad: bool,
    ) -> Result<(Timestamp, Timestamp), ServiceError> {
        let now = self.clock.now();
        let from = match from {
            Some(t) => required_time(Some(t), "from")?,
            None => now.plus_millis(-24 * 3_600_000),
        };
        let to = match to {
            Some(t) => required_time(Some(t), "to")?,
            None => now,
        };
        self.check_window(plan, from, to, what, allow_broad)
    }

    /// Checks a window's order and length, then the access rules; returns
    /// the permitted window.
    pub(super) fn check_window(
        &self,
        plan: &mut Plan,
        from: Timestamp,
        to: Timestamp,
        what: &str,
        allow_broad: bool,
    ) -> Result<(Timestamp, Timestamp), ServiceError> {
        if from > to {
            return Err(ServiceError::invalid(format!(
                "{what}: the window is inverted (from {from} is after to {to})"
            )));
        }
        let hours = (to.millis() - from.millis()) as f64 / 3_600_000.0;
        if !allow_broad && hours > f64::from(self.caps.max_window_hours) {
            return Err(ServiceError::precondition(format!(
                "{what}: the window is {hours:.1} hours, over this node's cap of {} hours; narrow it or set allow_broad",
                self.caps.max_window_hours
            )));
        }
        plan.permit(from, to).map_err(|e| e.about(what))
    }

    /// Starts planning a search for the caller of `req` with the context
    /// it gave (refusals are audited by the caller of this).
    /// Starts planning a search (`search`, for the audit) for the caller of
    /// `req`, or the user a peer relays, with the context it gave: the plan,
    /// and whether the context holds (refusals past this point are audited
    /// by the caller of this; those before it here).
    pub(super) async fn plan_relayed<T>(
        &self,
        req: &Request<T>,
        search: &str,
        access: Option<&pb::AccessContext>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<(Plan, Result<(), ServiceError>), Status> {
        let mut who = caller(req)?;
        // The node relaying, from its certificate (never from the request).
        let relaying = match &who.principal {
            Principal::Node { name } => Some(name.clone()),
            _ => None,
        };
        // Who may not search at all (a BOF, a user without a searching
        // role, a relay the rules refuse, a user naming a relay) is
        // refused here, audited too. Past this, `relay` is a relay a peer
        // made, checked, or none.
        let (early, relay) = match relayed_user(self.federation.as_deref(), &who.principal, relay) {
            Ok(Some(user)) => {
                who.principal = user;
                (who.require_searcher().map(drop), relay)
            }
            Ok(None) if relay.is_some() => (
                Err(Status::from(ServiceError::denied(
                    "on_behalf_of is set only by a peer node relaying a user's search; \
                     a user's own request leaves it empty",
                ))),
                None,
            ),
            Ok(None) => (who.require_searcher().map(drop), None),
            Err(e) => (Err(e.into()), None),
        };
        if let Err(status) = early {
            let given = access.cloned().unwrap_or_default();
            let what = Audited {
                access: AccessContext {
                    purpose: given.purpose,
                    case_ref: given.case_ref,
                    authorisation: given.authorisation,
                },
                ..Default::default()
            };
            let actor = Actor::of(&who.principal);
            let action = format!("search.{search}");
            return Err(self.governance.refuse(&actor, &action, &what, status).await);
        }
        let actor = Actor::of(&who.principal);
        let given = access.cloned().unwrap_or_default();
        let mut plan = Plan {
            actor,
            access: AccessContext {
                purpose: given.purpose.clone(),
                case_ref: given.case_ref.clone(),
                authorisation: given.authorisation.clone(),
            },
            clip: given.clip_to_permitted,
            governance: self.governance.clone(),
            clipped_from: None,
            query: serde_json::Value::Null,
            now: self.clock.now(),
            case: None,
            via: relay.and(relaying),
        };
        let context = self.governance.context(access).map_err(ServiceError::from);
        let checked = context.and_then(|(ctx, clip)| {
            plan.access = ctx;
            plan.clip = clip;
            let case = self.case_of(&plan.actor, &plan.access.case_ref, &given, relay);
            // The audit names another force's case as OWNER/REF.
            plan.access.case_ref = match &case {
                Ok(c) => crate::cases::name_for(&plan.actor, c),
                Err(_) => {
                    crate::disclosure::shown(&plan.actor, &plan.access.case_ref, &given.case_force)
                }
            };
            plan.case = Some(case?);
            Ok(())
        });
        Ok((plan, checked))
    }

    /// Audits a search refused before it is planned (as its caller), then
    /// returns the refusal.
    pub(super) async fn refuse_early<T>(
        &self,
        req: &Request<T>,
        search: &str,
        refused: ServiceError,
    ) -> Status {
        let actor = match caller(req) {
            Ok(who) => Actor::of(&who.principal),
            Err(e) => return e,
        };
        let action = format!("search.{search}");
        self.governance
            .refuse(&actor, &action, &Audited::default(), refused)
            .await
    }

    /// The case a search is under: one the user's force is a member of
    /// (a search a peer relays is under the case the user's own node
    /// checked).
    pub(super) fn case_of(
        &self,
        actor: &Actor,
        case_ref: &str,
        given: &pb::AccessContext,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<crate::cases::CaseId, ServiceError> {
        let cases = &self.governance.cases;
        if relay.is_some() {
            Ok(crate::cases::Cases::named(
                actor,
                case_ref,
                &given.case_force,
            )?)
        } else {
            Ok(cases.resolve(actor, case_ref, &given.case_force, "search under it")?)
        }
    }

    /// Runs `work` for `plan` under a search worker, off the runtime (a
    /// search that cannot have a worker is refused and audited), with the
    /// store, this node's name and the governed path; gives back its
    /// answer.
    pub(super) async fn on_worker<T: Send + 'static>(
        &self,
        plan: Plan,
        search: &str,
        work: impl FnOnce(&dyn nadc_store::Store, &str, &Governance, Plan) -> Result<T, Status>
        + Send
        + 'static,
    ) -> Result<T, Status> {
        let worker = match self.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(self.refuse(&plan, search, status.into()).await),
        };
        let (store, node, governance) = (
            self.store.clone(),
            self.node.clone(),
            self.governance.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let _worker = worker;
            work(store.as_ref(), &node, &governance, plan)
        })
        .await
        .map_err(|e| Status::from(ServiceError::internal(format!("analysis task failed: {e}"))))?
    }

    /// Audits a search refused while planning, then returns the refusal.
    pub(super) async fn refuse(&self, plan: &Plan, search: &str, refused: ServiceError) -> Status {
        let status = Status::from(refused);
        let entry = self.governance.entry(
            &plan.actor,
            &format!("search.{search}"),
            &plan.audited(Vec::new()),
            Outcome::Refused(status.message().to_string()),
        );
        match self.governance.record(entry).await {
            Ok(_) => status,
            Err(e) => e,
        }
    }

    pub(super) fn geo_query(
        &self,
        plan: &mut Plan,
        q: &pb::GeoSearchRequest,
    ) -> Result<Watched<GeoQuery>, ServiceError> {
        plan.query = json!({"areas": areas_json(&q.areas), "match": q.r#match,
            "limit": q.limit, "offset": q.offset, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        if q.areas.is_empty() {
            return Err(ServiceError::invalid(
                "a geographic search needs at least one area",
            ));
        }
        let (areas, matching) = self.areas(plan, &q.areas, q.r#match, q.allow_broad)?;
        // The fixed cameras in each area (a mobile camera's registered
        // place is only its base), watched in the area's window.
        let mut watch = Vec::new();
        for a in &areas {
            for c in self.visible_cameras(plan, |c| !c.kind.moves() && a.shape.contains(c.position))
            {
                watch.push((c, a.from, a.to));
            }
        }
        Ok(Watched {
            query: GeoQuery {
                areas,
                matching,
                limit: self.limit(q.limit)?,
                offset: q.offset as usize,
                max_candidates: self.caps.max_candidates,
            },
            watch,
            floor: plan.floor(),
        })
    }

    pub(super) fn areas(
        &self,
        plan: &mut Plan,
        areas: &[pb::Area],
        m: i32,
        allow_broad: bool,
    ) -> Result<(Vec<Area>, AreaMatch), ServiceError> {
        let max_areas = if allow_broad {
            100
        } else {
            self.caps.max_areas
        };
        if areas.len() > max_areas {
            return Err(ServiceError::precondition(format!(
                "{} areas given; at most {max_areas}",
                areas.len()
            )));
        }
        let mut out = Vec::with_capacity(areas.len());
        for (i, a) in areas.iter().enumerate() {
            let what = format!("area {}", i + 1);
            let shape = if a.polygon.trim().is_empty() {
                let centre = GeoPoint::new(a.lat, a.lon)
                    .map_err(|e| ServiceError::invalid(format!("{what}: {e}")))?;
                Shape::Circle(
                    Circle::new(centre, a.radius_m)
                        .map_err(|e| ServiceError::invalid(format!("{what}: {e}")))?,
                )
            } else {
                Polygon::parse(&a.polygon)
                    .and_then(Shape::polygon)
                    .map_err(|e| ServiceError::invalid(format!("{what}: {e}")))?
            };
            let radius = shape.scan_circle().radius_m();
            if !allow_broad && radius > self.caps.max_radius_m {
                return Err(ServiceError::precondition(format!(
                    "{what}: radius {radius:.0} m is over this node's cap of {} m; narrow it or set allow_broad",
                    self.caps.max_radius_m
                )));
            }
            let from = required_time(a.from.as_ref(), &format!("{what}: from"))?;
            let to = required_time(a.to.as_ref(), &format!("{what}: to"))?;
            let (from, to) = self.check_window(plan, from, to, &what, allow_broad)?;
            out.push(Area { shape, from, to });
        }
        let matching = match pb::AreaMatch::try_from(m) {
            Ok(pb::AreaMatch::All) => AreaMatch::All,
            Ok(pb::AreaMatch::Any | pb::AreaMatch::Unspecified) => AreaMatch::Any,
            Err(_) => return Err(ServiceError::invalid(format!("match {m} is unknown"))),
        };
        Ok((out, matching))
    }

    pub(super) fn vehicle_query(
        &self,
        plan: &mut Plan,
        q: &pb::VehicleSearchRequest,
    ) -> Result<VehicleQuery, ServiceError> {
        plan.query = json!({"make": q.make, "model": q.model, "colour": q.colour,
            "areas": areas_json(&q.areas), "match": q.r#match, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "limit": q.limit, "offset": q.offset,
            "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let details = Details {
            make: q.make.clone(),
            model: q.model.clone(),
            colour: q.colour.clone(),
        };
        if details.normalised().is_empty() {
            return Err(ServiceError::invalid(
                "give at least one of make, model or colour",
            ));
        }
        let (areas, matching) = self.areas(plan, &q.areas, q.r#match, q.allow_broad)?;
        let (from, to) = if areas.is_empty() {
            let from = required_time(q.from.as_ref(), "from (needed when no area is given)")?;
            let to = required_time(q.to.as_ref(), "to (needed when no area is given)")?;
            self.check_window(plan, from, to, "vehicle search", q.allow_broad)?
        } else {
            (Timestamp::EPOCH, Timestamp::EPOCH)
        };
        Ok(VehicleQuery {
            details,
            areas,
            matching,
            from,
            to,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_candidates: self.caps.max_candidates,
        })
    }

    /// The registered cameras `keep` keeps that `plan`'s caller may see
    /// (another force's covert cameras are its own business).
    pub(super) fn visible_cameras(
        &self,
        plan: &Plan,
        keep: impl Fn(&nadc_core::Camera) -> bool,
    ) -> Vec<nadc_core::Camera> {
        let own = plan.actor.force.as_ref();
        self.cameras.matching(|c| {
            (c.kind != nadc_core::CameraKind::Covert || Some(&c.force) == own) && keep(c)
        })
    }

    pub(super) fn camera_query(
        &self,
        plan: &mut Plan,
        q: &pb::CameraSearchRequest,
    ) -> Result<Watched<CameraQuery>, ServiceError> {
        plan.query = json!({"cameras": q.cameras.iter().map(|c| format!("{}:{}", c.force, c.camera_id)).collect::<Vec<_>>(),
            "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
            "limit": q.limit, "offset": q.offset, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        if q.cameras.is_empty() {
            return Err(ServiceError::invalid(
                "a camera search needs at least one camera",
            ));
        }
        let max = if q.allow_broad {
            1000
        } else {
            self.caps.max_cameras
        };
        if q.cameras.len() > max {
            return Err(ServiceError::precondition(format!(
                "{} cameras given; at most {max}",
                q.cameras.len()
            )));
        }
        let cameras = q
            .cameras
            .iter()
            .map(|c| {
                let force = ForceId::new(&c.force)
                    .map_err(|e| ServiceError::invalid(format!("camera {:?}: {e}", c.camera_id)))?;
                nadc_core::camera::validate_camera_id(&c.camera_id)
                    .map_err(|e| ServiceError::invalid(e.to_string()))?;
                Ok((force, c.camera_id.clone()))
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let from = required_time(q.from.as_ref(), "from")?;
        let to = required_time(q.to.as_ref(), "to")?;
        let (from, to) = self.check_window(plan, from, to, "camera search", q.allow_broad)?;
        let named: std::collections::BTreeSet<&(ForceId, String)> = cameras.iter().collect();
        let watch = self
            .visible_cameras(plan, |c| {
                named.contains(&(c.force.clone(), c.camera_id.clone()))
            })
            .into_iter()
            .map(|c| (c, from, to))
            .collect();
        Ok(Watched {
            query: CameraQuery {
                cameras,
                from,
                to,
                limit: self.limit(q.limit)?,
                offset: q.offset as usize,
                max_candidates: self.caps.max_candidates,
            },
            watch,
            floor: plan.floor(),
        })
    }

    /// A VRM search's window: by default the data the caller may see (the
    /// standard tier, or the retention period under an authorisation).
    pub(super) fn window(
        &self,
        plan: &mut Plan,
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
    ) -> Result<(Timestamp, Timestamp), ServiceError> {
        let now = plan.now;
        let default_from = if plan.access.authorisation.is_empty() {
            self.governance.policy.standard_start(now)
        } else {
            now.minus_days(self.retention_days)
        };
        let parse = |t: Option<&prost_types::Timestamp>, name: &str, default: Timestamp| match t {
            None => Ok(default),
            Some(t) => proto::from_pb_time(t).ok_or_else(|| {
                ServiceError::invalid(format!("{name} is outside 1970-01-01 to 9999-12-31"))
            }),
        };
        let from = parse(from, "from", default_from)?;
        let to = parse(to, "to", now)?;
        if from > to {
            return Err(ServiceError::invalid(format!(
                "the window is inverted: from {from} is after to {to}"
            )));
        }
        plan.permit(from, to)
    }

    pub(super) fn limit(&self, requested: u32) -> Result<usize, ServiceError> {
        match requested as usize {
            0 => Ok(self.default_limit),
            n if n <= self.max_limit => Ok(n),
            n => Err(ServiceError::invalid(format!(
                "limit {n} is above this node's maximum of {}",
                self.max_limit
            ))),
        }
    }
}

impl SearchService {
    pub(super) fn timeline_query(
        &self,
        plan: &mut Plan,
        q: &pb::VrmTimelineRequest,
    ) -> Result<TimelineQuery, ServiceError> {
        plan.query = json!({"vrm": q.vrm, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "limit": q.limit});
        // `?` and `*` are ASCII punctuation, which normalising would
        // silently drop: "AB12*" would give the timeline of AB12.
        if let Some(pos) = q.vrm.chars().position(|c| matches!(c, '?' | '*')) {
            return Err(ServiceError::invalid(format!(
                "vrm: wildcard at position {}: a timeline is of one VRM; use a VRM search for patterns",
                pos + 1
            )));
        }
        let vrm = Vrm::normalise(&q.vrm).map_err(|e| ServiceError::invalid(format!("vrm: {e}")))?;
        let (from, to) = self.window(plan, q.from.as_ref(), q.to.as_ref())?;
        Ok(TimelineQuery {
            vrm,
            from,
            to,
            limit: self.limit(q.limit)?,
        })
    }

    pub(super) fn vrm_query(
        &self,
        plan: &mut Plan,
        q: &pb::VrmSearchRequest,
    ) -> Result<VrmQuery, ServiceError> {
        plan.query = json!({"pattern": q.pattern, "fuzzy": q.fuzzy, "max_edits": q.max_edits,
            "confusable_groups": q.confusable_groups, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "limit": q.limit, "offset": q.offset});
        let pattern = Pattern::parse(&q.pattern)
            .map_err(|e| ServiceError::invalid(format!("pattern: {e}")))?;
        let max_edits = q.max_edits.unwrap_or(1);
        if max_edits > 2 {
            return Err(ServiceError::invalid(format!(
                "max_edits {max_edits} is too many: 0 to 2"
            )));
        }
        let groups = if q.confusable_groups.is_empty() {
            ConfusableGroups::default()
        } else {
            ConfusableGroups::new(&q.confusable_groups)
                .map_err(|e| ServiceError::invalid(e.to_string()))?
        };
        let (from, to) = self.window(plan, q.from.as_ref(), q.to.as_ref())?;
        Ok(VrmQuery {
            pattern,
            fuzzy: q.fuzzy,
            max_edits: max_edits as u8,
            groups,
            from,
            to,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_vrms: self.caps.max_vrms,
        })
    }
}

/// How a query that did not answer is audited: a store failure failed,
/// anything else was refused.
pub(super) fn query_outcome(e: &QueryError) -> Outcome {
    match e {
        QueryError::Store(e) => Outcome::Failed(e.to_string()),
        e => Outcome::Refused(e.to_string()),
    }
}
