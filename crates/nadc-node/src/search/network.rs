//! The Analysis service's associate network: from seed vehicles, hop by
//! hop, each hop the Search service's own convoy analysis of the vehicles
//! the hop before found (so each is planned, governed, audited and fanned
//! out nationally exactly as a convoy search asked directly), put together
//! as a co-travel graph. The network itself is audited too: who asked, the
//! seeds, the hops made and the vehicles found.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::StreamExt;
use nadc_core::audit::Outcome;
use nadc_proto::pb;
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use crate::error::ServiceError;
use crate::governance::{Actor, Audited};

/// Most hops from the seeds.
const MAX_HOPS: u32 = 3;
/// Most vehicles expanded per hop.
const MAX_EXPAND: u32 = 25;
/// Companions each hop's convoy returns.
const COMPANIONS_PER_HOP: u32 = 100;

impl SearchService {
    /// Answers an associate-network request.
    pub(super) async fn network_of(
        &self,
        req: Request<pb::NetworkRequest>,
    ) -> Result<pb::NetworkResponse, Status> {
        let started = Instant::now();
        let q = req.get_ref().clone();
        let actor = Actor::of(&crate::auth::caller(&req)?.principal);
        // Refusals before the first hop are audited, as a search's are.
        let checked = match (q.hops, q.expand) {
            (h, _) if h > MAX_HOPS => Err(format!("hops {h}: at most {MAX_HOPS}")),
            (_, e) if e > MAX_EXPAND => Err(format!("expand {e}: at most {MAX_EXPAND}")),
            (h, e) => Ok((h.max(1), if e == 0 { 10 } else { e })),
        };
        let (hops, expand) = match checked {
            Ok(v) => v,
            Err(m) => {
                return Err(self
                    .governance
                    .refuse(
                        &actor,
                        "search.network",
                        &Audited::default(),
                        ServiceError::invalid(m),
                    )
                    .await);
            }
        };
        let mut nodes: BTreeMap<String, pb::NetworkNode> = BTreeMap::new();
        let mut edges: BTreeMap<(String, String), pb::NetworkEdge> = BTreeMap::new();
        let mut outcomes = Vec::new();
        // Each node behind the log once (its latest word), from every hop.
        let mut stale: BTreeMap<String, pb::StaleReplica> = BTreeMap::new();
        let (mut partial, mut truncated, mut made) = (false, false, 0);
        // Hop 1 asks of the seeds as given (VRMs and the list); later hops
        // of the vehicles found.
        let mut frontier: Vec<String> = q.vrms.clone();
        let mut list = q.hotlist.clone();
        for hop in 1..=hops {
            if frontier.is_empty() && list.is_none() {
                break;
            }
            let mut convoy = Request::new(pb::ConvoyRequest {
                vrms: frontier.clone(),
                hotlist: list.take(),
                from: q.from,
                to: q.to,
                window_s: q.window_s,
                min_count: q.min_count,
                min_cameras: q.min_cameras,
                limit: COMPANIONS_PER_HOP,
                allow_broad: q.allow_broad,
                access: q.access.clone(),
                scope: q.scope,
                on_behalf_of: None,
            });
            crate::auth::carry_caller(&req, &mut convoy);
            let mut stream = pb::search_server::Search::convoy(self, convoy)
                .await?
                .into_inner();
            let mut companions = Vec::new();
            let mut summary = None;
            while let Some(chunk) = stream.next().await {
                match chunk?.chunk {
                    Some(pb::convoy_chunk::Chunk::Companion(c)) => companions.push(c),
                    Some(pb::convoy_chunk::Chunk::Summary(s)) => summary = Some(s),
                    None => {}
                }
            }
            made = hop;
            let summary = summary.unwrap_or_default();
            partial |= summary.partial;
            outcomes.extend(summary.nodes.iter().cloned());
            stale.extend(summary.stale.iter().map(|s| (s.node.clone(), s.clone())));
            for t in &summary.targets {
                nodes.entry(t.clone()).or_insert_with(|| pb::NetworkNode {
                    vrm: t.clone(),
                    hop: hop - 1,
                    expanded: true,
                });
                if let Some(n) = nodes.get_mut(t) {
                    n.expanded = true;
                }
            }
            let mut found = Vec::new();
            for c in companions {
                nodes.entry(c.vrm.clone()).or_insert_with(|| {
                    found.push(c.vrm.clone());
                    pb::NetworkNode {
                        vrm: c.vrm.clone(),
                        hop,
                        expanded: false,
                    }
                });
                // One edge per target the companion accompanied.
                let mut by_target: BTreeMap<String, Vec<pb::ConvoyPair>> = BTreeMap::new();
                for p in c.pairs {
                    let target = p
                        .target
                        .as_ref()
                        .map_or_else(String::new, |r| r.vrm.clone());
                    by_target.entry(target).or_default().push(p);
                }
                for (target, pairs) in by_target {
                    let cameras: BTreeSet<(String, String)> = pairs
                        .iter()
                        .filter_map(|p| p.companion.as_ref()?.provenance.as_ref())
                        .map(|p| (p.owning_force.clone(), p.camera_id.clone()))
                        .collect();
                    let edge = pb::NetworkEdge {
                        target: target.clone(),
                        companion: c.vrm.clone(),
                        co_occurrences: pairs.len() as u32,
                        cameras: cameras.len() as u32,
                        pairs,
                    };
                    edges.entry((target, c.vrm.clone())).or_insert(edge);
                }
            }
            // The strongest new vehicles (the convoy ranked them) are the
            // next hop's targets.
            truncated |= found.len() > expand as usize && hop < hops;
            found.truncate(expand as usize);
            frontier = found;
        }
        let answer = pb::NetworkResponse {
            nodes: nodes.into_values().collect(),
            edges: edges.into_values().collect(),
            hops: made,
            truncated,
            partial,
            nodes_asked: outcomes,
            elapsed_us: started.elapsed().as_micros() as u64,
            stale: stale.into_values().collect(),
        };
        // Each hop's convoy audited what it disclosed; the network records
        // what was asked and found.
        let (access, _) = self.governance.context(q.access.as_ref())?;
        let what = Audited {
            access,
            query: json!({"vrms": q.vrms,
                "hotlist": q.hotlist.as_ref().map(|h| format!("{}/{}", h.owner, h.name)),
                "hops": made, "expand": expand, "vehicles": answer.nodes.len(),
                "edges": answer.edges.len()}),
            returned: Vec::new(),
        };
        self.governance
            .record(
                self.governance
                    .entry(&actor, "search.network", &what, Outcome::Ok),
            )
            .await?;
        Ok(answer)
    }
}
