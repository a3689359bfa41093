//! National alert watches: the history of this node and its peers merged,
//! and each peer's new alerts followed live. Each peer decides and audits
//! what it discloses to the relayed user; this node audits what it passes
//! on, before it does.

use crate::error::ServiceError;
use std::sync::Arc;

use nadc_core::Timestamp;
use nadc_proto::{self as proto, pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};
use tracing::warn;

use super::events::AlertFilter;
use super::service::{AlertsService, EventStream, WatchGrant, drain_blocking};
use crate::federation::Federation;

impl AlertsService {
    /// The alerts logged on this node and its peers, merged by the time
    /// they were raised (then node, then position); a peer that fails ends
    /// the stream with UNAVAILABLE naming it, after the rest.
    pub(super) async fn national_history(
        &self,
        grant: WatchGrant,
        filter: AlertFilter,
        q: pb::WatchRequest,
        federation: Arc<Federation>,
    ) -> Result<Response<EventStream>, Status> {
        use futures::StreamExt;
        let (store, node, now) = (self.store.clone(), self.node.clone(), self.clock.now());
        let (after, local_grant) = (q.after, grant.clone());
        let local = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            drain_blocking(
                store.as_ref(),
                &node,
                &local_grant,
                &filter,
                after,
                now,
                &mut |batch| {
                    out.extend(batch);
                    true
                },
            )?;
            Ok::<_, Status>(out)
        })
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))??;
        let remote = relayed(&grant, &q, &self.node, |r| {
            (r.after, r.from_now) = (0, false);
        });
        let answers = federation
            .call_peers(&federation.peers, |peer| {
                let req = remote.clone();
                async move {
                    let mut c = pb::alerts_client::AlertsClient::new(peer.channel())
                        .max_decoding_message_size(64 << 20);
                    let mut s = c.watch(req).await?.into_inner();
                    let mut out = Vec::new();
                    while let Some(e) = s.next().await {
                        out.push(e?);
                    }
                    Ok::<_, Status>(out)
                }
            })
            .await;
        let mut all = local;
        let mut theirs = Vec::new();
        let mut failed = Vec::new();
        for (name, r) in answers {
            match r {
                Ok(v) => theirs.extend(v),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        // What the peers disclosed, passed on: audited here before it is.
        let passed = grant.clone();
        let theirs = tokio::task::spawn_blocking(move || {
            passed.disclose_blocking(&theirs, "peers")?;
            Ok::<_, Status>(theirs)
        })
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))??;
        all.extend(theirs);
        let ms = |e: &pb::AlertEvent| {
            e.raised_at
                .as_ref()
                .and_then(proto::from_pb_time)
                .map_or(0, |t| t.millis())
        };
        all.sort_by_cached_key(|e| (ms(e), e.node.clone(), e.position));
        let (tx, rx) = mpsc::channel::<Result<pb::AlertEvent, Status>>(64);
        tokio::spawn(async move {
            for e in all {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            if !failed.is_empty() {
                let _ = tx
                    .send(Err(ServiceError::unavailable(format!(
                        "partial: alerts of {} are missing",
                        failed.join("; ")
                    ))
                    .into()))
                    .await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// Follows every peer's new alerts into `tx` for the watcher.
    pub(super) fn follow_peers(
        &self,
        grant: &WatchGrant,
        q: &pb::WatchRequest,
        federation: &Federation,
        tx: mpsc::Sender<Result<pb::AlertEvent, Status>>,
    ) {
        let remote = relayed(grant, q, &self.node, |_| {});
        let since = self.clock.now();
        for peer in &federation.peers {
            tokio::spawn(follow_peer(
                Followed {
                    name: peer.name.clone(),
                    channel: peer.channel(),
                    request: remote.clone(),
                    since,
                    grant: grant.clone(),
                },
                tx.clone(),
            ));
        }
    }
}

/// `q` as relayed to a peer for the watcher: this node's peers ask for
/// their own log only, on the user's behalf, under the same context.
fn relayed(
    grant: &WatchGrant,
    q: &pb::WatchRequest,
    node: &str,
    adjust: impl FnOnce(&mut pb::WatchRequest),
) -> pb::WatchRequest {
    let mut remote = q.clone();
    remote.scope = pb::Scope::Local as i32;
    let user = nadc_core::Principal::User {
        force: grant.force.clone(),
        name: grant.actor.user.clone(),
        roles: grant.actor.roles.clone(),
    };
    remote.on_behalf_of = crate::federation::on_behalf_of(&user, node);
    adjust(&mut remote);
    remote
}

/// A notice on a national watch that a peer was lost or is back.
fn peer_notice(node: &str, error: Option<(&str, std::time::Duration)>) -> pb::AlertEvent {
    pb::AlertEvent {
        node: node.to_string(),
        peer: Some(pb::PeerNotice {
            node: node.to_string(),
            reachable: error.is_none(),
            error: error.map(|(e, _)| e.to_string()).unwrap_or_default(),
            retry_in_ms: error.map_or(0, |(_, w)| w.as_millis() as u64),
        }),
        ..Default::default()
    }
}

/// One peer followed for a watcher.
struct Followed {
    name: String,
    channel: tonic::transport::Channel,
    request: pb::WatchRequest,
    /// When the watch began: the first connection starts from the peer's
    /// newest alert; a reconnection before any alert came replays the
    /// peer's log from this time.
    since: Timestamp,
    grant: WatchGrant,
}

/// Passes one alert of a peer on, audited first; false once the watcher
/// has gone (or the audit failed, which ends the watch with its error).
async fn pass_on(
    grant: &WatchGrant,
    e: pb::AlertEvent,
    tx: &mpsc::Sender<Result<pb::AlertEvent, Status>>,
) -> bool {
    let (g, from) = (grant.clone(), e.node.clone());
    let one = vec![e];
    let audited = tokio::task::spawn_blocking(move || {
        g.disclose_blocking(&one, &from)?;
        Ok::<_, Status>(one)
    })
    .await
    .unwrap_or_else(|e| Err(ServiceError::internal(e.to_string()).into()));
    match audited {
        Ok(mut one) => match one.pop() {
            Some(e) => tx.send(Ok(e)).await.is_ok(),
            None => true,
        },
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            false
        }
    }
}

/// Follows one peer's new alerts into `tx` until the subscriber goes. A
/// lost peer is reconnected with backoff and resumed after the last
/// position it sent (or, if it sent none yet, from its log filtered to
/// alerts raised since the watch began), so an outage delays its alerts
/// but loses none; the watcher is told when the peer is lost (once per
/// outage) and when it is back.
async fn follow_peer(f: Followed, tx: mpsc::Sender<Result<pb::AlertEvent, Status>>) {
    let mut last: Option<u64> = None;
    let mut reconnecting = false;
    let mut attempt = 0u32;
    loop {
        let mut req = f.request.clone();
        match (last, reconnecting) {
            (Some(p), _) => (req.after, req.from_now) = (p, false),
            (None, false) => req.from_now = true,
            (None, true) => {
                (req.after, req.from_now) = (0, false);
                req.raised_since = Some(proto::to_pb_time(f.since));
            }
        }
        let mut client = pb::alerts_client::AlertsClient::new(f.channel.clone())
            .max_decoding_message_size(64 << 20);
        let lost = attempt > 0;
        let outcome = async {
            let mut s = client.watch(req).await?.into_inner();
            if lost {
                attempt = 0;
                if tx.send(Ok(peer_notice(&f.name, None))).await.is_err() {
                    return Ok(());
                }
            }
            while let Some(e) = s.message().await? {
                last = Some(e.position);
                let raised = e.raised_at.as_ref().and_then(proto::from_pb_time);
                if raised.is_some_and(|t| t < f.since) {
                    continue;
                }
                if !pass_on(&f.grant, e, &tx).await {
                    return Ok(());
                }
            }
            Err(Status::from(ServiceError::unavailable(
                "the peer ended the watch",
            )))
        };
        let error = tokio::select! {
            r = outcome => match r {
                Ok(()) => return,
                Err(e) => e,
            },
            () = tx.closed() => return,
        };
        reconnecting = true;
        let wait = std::time::Duration::from_millis(200 * (1u64 << attempt.min(7)));
        if attempt == 0 {
            let notice = peer_notice(&f.name, Some((error.message(), wait)));
            if tx.send(Ok(notice)).await.is_err() {
                return;
            }
        }
        attempt += 1;
        warn!(peer = %f.name, error = %error.message(), wait_ms = wait.as_millis() as u64,
            "national alert watch: peer lost, reconnecting");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = tx.closed() => return,
        }
    }
}
