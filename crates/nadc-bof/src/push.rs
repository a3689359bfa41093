//! Pushing reads: batches streamed over `PushStream`, acknowledged in order
//! once durable on the node.
//!
//! A parsing thread turns rows into batches; a sender keeps at most
//! `window` batches unacknowledged on the wire; the caller's task reads the
//! acknowledgements. Bad rows never reach the node: they are reported with
//! their line numbers and the good rows around them are sent.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::format::{RowError, Rows};
use crate::{ClientError, pb};

/// How reads are batched and pipelined.
#[derive(Clone, Copy, Debug)]
pub struct PushOptions {
    /// Reads per batch (the node's limit is 10,000 by default).
    pub batch_size: usize,
    /// Batches sent but not yet acknowledged, at most.
    pub window: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            window: 8,
        }
    }
}

/// A read the node refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The batch it was in.
    pub batch_seq: u64,
    /// Its index in that batch.
    pub index: u32,
    /// Its read id.
    pub read_id: String,
    /// The reason code, e.g. `invalid_vrm`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Running totals, passed to the progress callback after each acknowledgement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Batches acknowledged.
    pub batches: u64,
    /// Reads acknowledged (accepted + duplicates + rejected).
    pub acknowledged: u64,
    /// Reads newly stored.
    pub accepted: u64,
    /// Reads the node already held.
    pub duplicates: u64,
    /// Reads the node refused.
    pub rejected: u64,
}

/// What a push did.
#[derive(Clone, Debug, Default)]
pub struct PushReport {
    /// Totals.
    pub totals: Progress,
    /// Every refused read with its reason.
    pub rejected: Vec<Rejected>,
    /// Rows that could not be parsed, with line numbers (never sent).
    pub malformed: Vec<RowError>,
    /// Each batch's acknowledgement latency, in order: from handing it to
    /// the stream to its acknowledgement.
    pub ack_latency: Vec<std::time::Duration>,
}

/// Streams `rows` to the node over one `PushStream` call.
///
/// Returns when every batch is acknowledged. On a transport or node error
/// the batches not yet acknowledged were not confirmed durable: pushing the
/// same file again is safe (duplicates are detected by read id).
pub async fn push_rows(
    channel: Channel,
    rows: Rows<pb::Read>,
    opts: PushOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<PushReport, ClientError> {
    let batch_size = opts.batch_size.clamp(1, 100_000);
    let window = Arc::new(Semaphore::new(opts.window.max(1)));

    // Parsing thread: rows -> batches; malformed rows kept aside.
    let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<pb::Read>>(opts.window.max(1));
    let parser = tokio::task::spawn_blocking(move || {
        let mut malformed = Vec::new();
        let mut batch = Vec::with_capacity(batch_size);
        for row in rows {
            match row {
                Ok(r) => {
                    batch.push(r);
                    if batch.len() == batch_size {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                        if batch_tx.blocking_send(full).is_err() {
                            return malformed;
                        }
                    }
                }
                Err(e) => malformed.push(e),
            }
        }
        if !batch.is_empty() {
            let _ = batch_tx.blocking_send(batch);
        }
        malformed
    });

    // Sender: batches -> the request stream, at most `window` unacknowledged.
    let (req_tx, req_rx) = mpsc::channel::<pb::ReadBatch>(opts.window.max(1));
    let sender_window = window.clone();
    // When each batch was handed to the stream (acknowledgements come back
    // in order).
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<std::time::Instant>();
    let sender = tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(reads) = batch_rx.recv().await {
            let Ok(permit) = sender_window.acquire().await else {
                break;
            };
            permit.forget();
            seq += 1;
            let batch = pb::ReadBatch {
                batch_seq: seq,
                force: String::new(),
                reads,
            };
            let _ = sent_tx.send(std::time::Instant::now());
            if req_tx.send(batch).await.is_err() {
                break;
            }
        }
        seq
    });

    // If the call fails, stop the sender: that drops the batch queue, which
    // ends the parsing thread, so nothing is left running.
    let _stop_sender = crate::AbortOnDrop(sender.abort_handle());

    let mut client = pb::ingest_client::IngestClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut results = client
        .push_stream(ReceiverStream::new(req_rx))
        .await?
        .into_inner();
    let mut report = PushReport::default();
    while let Some(r) = results.message().await? {
        window.add_permits(1);
        if let Ok(sent) = sent_rx.try_recv() {
            report.ack_latency.push(sent.elapsed());
        }
        let t = &mut report.totals;
        t.batches += 1;
        t.accepted += u64::from(r.accepted);
        t.duplicates += u64::from(r.duplicates);
        t.rejected += r.rejected.len() as u64;
        t.acknowledged += u64::from(r.accepted) + u64::from(r.duplicates) + r.rejected.len() as u64;
        for x in r.rejected {
            report.rejected.push(Rejected {
                batch_seq: r.batch_seq,
                index: x.index,
                read_id: x.read_id,
                code: nadc_proto::code_name(x.code),
                message: x.message,
            });
        }
        progress(&report.totals);
    }
    let sent = sender
        .await
        .map_err(|e| ClientError::Input(format!("sender task failed: {e}")))?;
    report.malformed = parser
        .await
        .map_err(|e| ClientError::Input(format!("parser task failed: {e}")))?;
    if report.totals.batches != sent {
        return Err(ClientError::Input(format!(
            "the node acknowledged {} of {sent} batches; push again (duplicates are detected)",
            report.totals.batches
        )));
    }
    Ok(report)
}

/// Pushes one batch with the unary `PushBatch` call.
pub async fn push_batch(
    channel: Channel,
    batch: pb::ReadBatch,
) -> Result<pb::BatchResult, ClientError> {
    let mut client = pb::ingest_client::IngestClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    Ok(client.push_batch(batch).await?.into_inner())
}
