//! The applier: each node's store applies the replicated log in order,
//! from the position it holds, and hands back to a waiting push or change
//! what became of the entry its node appended.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::consumer;
use futures::StreamExt;
use nadc_proto::log::{Change, Entry, LoggedBatch, LoggedChange};
use nadc_proto::pb;
use nadc_store::{LogPosition, NewRead, Store};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{APPLIER_BACKOFF, Applied, Replication};
use crate::alerts::Alerting;
use crate::changes::State;
use crate::error::ServiceError;

impl Replication {
    /// Applies the log to the store, from the store's position, until the
    /// node stops; reconnects after a failure.
    pub(super) async fn apply_loop(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        alerting: Arc<Alerting>,
        shared: Arc<State>,
        filters: Vec<String>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let r = tokio::select! {
                r = self.apply_from_store(&store, &alerting, &shared, &filters) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            let problem = match r {
                Ok(()) => "the log's consumer ended".to_string(),
                Err(e) => e,
            };
            warn!(stream = %self.cfg.stream, problem = %problem, "applying the log stopped; starting again");
            *self.lock_problem() = Some(problem);
            tokio::select! {
                _ = tokio::time::sleep(APPLIER_BACKOFF) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn apply_from_store(
        &self,
        store: &Arc<dyn Store>,
        alerting: &Arc<Alerting>,
        shared: &Arc<State>,
        filters: &[String],
    ) -> Result<(), String> {
        let applied = {
            let store = store.clone();
            let name = self.cfg.stream.clone();
            tokio::task::spawn_blocking(move || store.log_position(&name))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        };
        let mut stream = self.stream().await?;
        let info = stream.info().await.map_err(|e| e.to_string())?.clone();
        let state = &info.state;
        // What a position here is a position in: this stream (one deleted
        // and made again numbers from 1 again) and these subjects.
        let scope = format!(
            "stream {} created {}; subjects {}",
            self.cfg.stream,
            info.created,
            filters.join(" ")
        );
        let refuse = |e: String| {
            error!(stream = %self.cfg.stream, "{e}");
            e
        };
        let from = match &applied {
            None => 0,
            Some(p) if p.scope != scope => {
                return Err(refuse(format!(
                    "this store applied the log as \"{}\", not as \"{scope}\" (the stream was made again, \
                     or the forces this replica holds changed): rebuild it from a replica of this log",
                    p.scope
                )));
            }
            Some(p) => p.seq,
        };
        if from > state.last_sequence {
            return Err(refuse(format!(
                "this store applied the log to position {from}, past its last message {}: \
                 rebuild it from a replica of this log",
                state.last_sequence
            )));
        }
        // Messages after this replica's position that the log no longer
        // holds (past its window) cannot be applied: never skip them. (A
        // replica of some forces cannot tell whose the lost messages were,
        // so it stops at any.)
        if from < state.last_sequence && from + 1 < state.first_sequence {
            return Err(refuse(format!(
                "the log no longer holds messages {}..{} after this replica's position {from} \
                 (older than its {}-day window): rebuild this replica from a healthy one's snapshot",
                from + 1,
                state.first_sequence - 1,
                self.cfg.log_days
            )));
        }
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from + 1,
                },
                filter_subjects: filters.to_vec(),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        info!(stream = %self.cfg.stream, after = from, "applying the replicated log");
        *self.lock_problem() = None;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| e.to_string())?;
            let info = m.info().map_err(|e| e.to_string())?;
            let seq = info.stream_sequence;
            self.pending.store(info.pending, Ordering::Relaxed);
            if seq <= self.applied() {
                continue;
            }
            // A replica of every force sees every message: one missing was
            // deleted before it was applied.
            if self.holds.is_empty() && seq != self.applied() + 1 {
                return Err(refuse(format!(
                    "the log went from position {} to {seq}: the messages between are gone \
                     before this replica applied them; rebuild it from a healthy one's snapshot",
                    self.applied()
                )));
            }
            let entry: pb::LogEntry = prost::Message::decode(m.payload.as_ref()).map_err(|e| {
                let e = format!("log entry {seq} does not decode: {e}");
                error!(stream = %self.cfg.stream, "{e}");
                e
            })?;
            let entry = nadc_proto::log::entry_from_pb(entry).map_err(|e| {
                let e = format!("log entry {seq}: {e}");
                error!(stream = %self.cfg.stream, "{e}");
                e
            })?;
            let at = LogPosition {
                stream: self.cfg.stream.clone(),
                seq,
                scope: scope.clone(),
            };
            match entry {
                Entry::Batch(batch) => {
                    // Only the force a message's subject names.
                    if m.subject.as_str() != self.subject(&batch.force) {
                        return Err(refuse(format!(
                            "log entry {seq} holds {}'s reads on subject {}: refused",
                            batch.force, m.subject
                        )));
                    }
                    self.apply_batch(store, alerting, batch, at).await?
                }
                Entry::Change(change) => {
                    if m.subject.as_str() != self.changes_subject() {
                        return Err(refuse(format!(
                            "log entry {seq} holds a change on subject {}: refused",
                            m.subject
                        )));
                    }
                    // When the cluster took it: the same on every replica.
                    let published = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
                    self.apply_change(store, shared, *change, at, published)
                        .await?
                }
            }
            self.applied.store(seq, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn apply_batch(
        &self,
        store: &Arc<dyn Store>,
        alerting: &Arc<Alerting>,
        batch: LoggedBatch,
        at: LogPosition,
    ) -> Result<(), String> {
        let force = batch.force.clone();
        let reads: Vec<NewRead> = batch
            .reads
            .into_iter()
            .map(|(read, position)| NewRead::new(read, position, batch.received_at))
            .collect();
        let (store, alerting2) = (store.clone(), alerting.clone());
        let f = force.clone();
        let (briefs, outcomes) = tokio::task::spawn_blocking(move || {
            crate::ingest::store_reads(&alerting2, store.as_ref(), &f, reads, Some(&at))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if !briefs.is_empty() {
            // Convoys are analysed by the node that took the batch alone,
            // and logged through the log for every replica.
            let decide = batch.origin_node == self.node;
            alerting.after_append(&force, briefs, &outcomes, decide);
        }
        self.hand_back(&batch.origin_node, batch.nonce, Applied::Reads(outcomes));
        Ok(())
    }

    /// Gives what the replica made of an entry to the push or change
    /// waiting for it, if this node appended it.
    fn hand_back(&self, origin_node: &str, nonce: u64, applied: Applied) {
        if origin_node == self.node
            && let Some(tx) = self.lock_waiting().remove(&nonce)
        {
            let _ = tx.send(applied);
        }
    }

    /// Applies a change ([`State::apply`]), then records its position
    /// (applying a change again leaves the state as it did, so a stop
    /// between the two is harmless). A change refused (a list that exists
    /// already, or no longer does) is refused alike by every replica.
    async fn apply_change(
        &self,
        store: &Arc<dyn Store>,
        state: &Arc<State>,
        change: LoggedChange,
        at: LogPosition,
        published_ms: i64,
    ) -> Result<(), String> {
        let (store, state) = (store.clone(), state.clone());
        let LoggedChange {
            origin_node,
            nonce,
            change,
        } = change;
        let mine = origin_node == self.node;
        let ahead_ms =
            i64::try_from(self.cfg.retention_ahead_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let done = tokio::task::spawn_blocking(move || {
            // A pass dated well after the cluster took it would delete
            // what is not yet expired, on every replica: refused alike by
            // all (the cluster's time is the same for each).
            if let Change::Retention { at: when, .. } = &change
                && when.millis() > published_ms.saturating_add(ahead_ms)
            {
                store.set_log_position(&at)?;
                return Ok(Err(ServiceError::invalid(format!(
                    "a retention pass dated {when}, more than retention_ahead_s after the log \
                     took it: refused"
                ))));
            }
            let done = state.apply(&change, mine, Some(&at))?;
            store.set_log_position(&at)?;
            Ok::<_, nadc_store::StoreError>(done)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        self.hand_back(&origin_node, nonce, Applied::Change(Box::new(done)));
        Ok(())
    }
}
