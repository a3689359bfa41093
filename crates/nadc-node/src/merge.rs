//! The streaming, exact merge of several nodes' answers to one search.
//!
//! Each node streams its rows in the search's order (capture time, or for a
//! VRM search the match ranking). The merge holds at most a chunk of rows
//! per node, never a whole answer: it passes a row on as soon as every node
//! still answering has shown its next row, or finished. So the first rows
//! of a national search reach the user while the nodes are still searching,
//! and the node searched holds a chunk per node however large the answer.
//!
//! Exactness: rows come out in one total order (the order's key, then node,
//! then sequence number), and a read held on two nodes (the same owning
//! force and BOF read id at the same capture time) comes out once. A node
//! that fails or misses its deadline mid-answer keeps the rows it sent; its
//! outcome says it failed and why.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use nadc_proto::pb;
use tokio::time::Instant;
use tonic::Status;

use crate::hedge::Replaced;

/// The order rows are merged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Capture time, then node, then sequence number: timelines,
    /// geographic, vehicle and camera searches.
    Time,
    /// How the VRM matched (exact, confusable, edits, wildcard), then VRM,
    /// then as [`Order::Time`]: VRM searches.
    Rank,
}

/// Where a row falls in the merged order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    rank: u32,
    vrm: String,
    millis: i64,
    node: String,
    seq: u64,
}

impl Key {
    fn of(row: &pb::ReadRow, order: Order) -> Key {
        let p = row.provenance.as_ref();
        let millis = p
            .and_then(|p| p.observed_at.as_ref())
            .and_then(nadc_proto::from_pb_time)
            .map_or(0, |t| t.millis());
        let (rank, vrm) = match order {
            Order::Time => (0, String::new()),
            Order::Rank => (match_rank(row.r#match.as_ref()), row.vrm.clone()),
        };
        Key {
            rank,
            vrm,
            millis,
            node: p.map(|p| p.node.clone()).unwrap_or_default(),
            seq: p.map_or(0, |p| p.seq),
        }
    }

    /// Whether two rows are at the same place in the order but for the
    /// node: where one read held on two nodes falls twice.
    fn same_place(&self, other: &Key) -> bool {
        (self.rank, &self.vrm, self.millis) == (other.rank, &other.vrm, other.millis)
    }
}

/// A VRM match's rank, as a node ranks its own answer
/// ([`MatchKind::rank`](nadc_core::vrm_match::MatchKind::rank)); a row
/// without a readable match last, with wildcards.
fn match_rank(m: Option<&pb::VrmMatch>) -> u32 {
    m.and_then(nadc_proto::match_from_pb)
        .map_or(10, |k| u32::from(k.rank()))
}

/// How a node's answer ended.
enum State {
    /// Still answering.
    Open,
    /// Its summary arrived.
    Done(pb::SearchSummary),
    /// It failed: why (for its outcome), and the status (for the answer,
    /// if the node is the one searched).
    Failed(String, Status),
}

/// One node's answer as it streams in.
pub struct Source {
    node: String,
    chunks: BoxStream<'static, Result<pb::SearchChunk, Status>>,
    /// When the node must have answered by, and the deadline it was given.
    deadline: Option<(Instant, Duration)>,
    /// The node this search was asked at: its failure fails the search.
    local: bool,
    rows: VecDeque<(Key, pb::ReadRow)>,
    vrms: Vec<pb::VrmAreaSummary>,
    received: u64,
    state: State,
    /// Filled in if a replica answers in the node's place.
    replaced: Option<Arc<OnceLock<Replaced>>>,
}

impl Source {
    /// The answer of the node the search was asked at.
    pub fn local(node: &str, chunks: BoxStream<'static, Result<pb::SearchChunk, Status>>) -> Self {
        Self::new(node, chunks, None, true)
    }

    /// A peer's answer, which must be complete within `deadline` from now,
    /// not counting the time the merge's consumer takes between rows (a
    /// slow client's; the peer itself stops an answer whose reader stalls
    /// past its `stalled_reader_s`).
    pub fn peer(
        node: &str,
        chunks: BoxStream<'static, Result<pb::SearchChunk, Status>>,
        deadline: Duration,
    ) -> Self {
        Self::new(
            node,
            chunks,
            Some((Instant::now() + deadline, deadline)),
            false,
        )
    }

    fn new(
        node: &str,
        chunks: BoxStream<'static, Result<pb::SearchChunk, Status>>,
        deadline: Option<(Instant, Duration)>,
        local: bool,
    ) -> Self {
        Self {
            node: node.to_string(),
            chunks,
            deadline,
            local,
            rows: VecDeque::new(),
            vrms: Vec::new(),
            received: 0,
            state: State::Open,
            replaced: None,
        }
    }

    /// Names, in the node's outcome, the replica that answered in its place
    /// if `slot` is filled by then.
    pub fn answered_by(mut self, slot: Arc<OnceLock<Replaced>>) -> Self {
        self.replaced = Some(slot);
        self
    }

    fn open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Reads chunks until a row is buffered or the answer has ended.
    async fn fill(&mut self, order: Order) {
        while self.rows.is_empty() && self.open() {
            let next = match self.deadline {
                None => self.chunks.next().await,
                Some((at, given)) => match tokio::time::timeout_at(at, self.chunks.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let why = crate::federation::deadline_missed(given);
                        self.fail(why.clone(), Status::deadline_exceeded(why));
                        break;
                    }
                },
            };
            match next {
                Some(Ok(c)) => match c.chunk {
                    Some(pb::search_chunk::Chunk::Rows(b)) => {
                        self.received += b.rows.len() as u64;
                        self.rows
                            .extend(b.rows.into_iter().map(|r| (Key::of(&r, order), r)));
                    }
                    Some(pb::search_chunk::Chunk::Vrms(v)) => self.vrms.extend(v.vrms),
                    Some(pb::search_chunk::Chunk::Summary(s)) => self.end(State::Done(s)),
                    None => {}
                },
                Some(Err(s)) => self.fail(nadc_bof::describe_status(&s), s),
                None => {
                    let why = "the answer ended without a summary";
                    self.fail(why.into(), Status::data_loss(why));
                }
            }
        }
    }

    fn fail(&mut self, why: String, status: Status) {
        self.end(State::Failed(why, status));
    }

    /// Ends the answer, and the call if it is still open.
    fn end(&mut self, state: State) {
        self.state = state;
        self.chunks = futures::stream::empty().boxed();
    }

    /// Reads the rest of the answer, dropping its rows, for its summary.
    async fn drain(&mut self, order: Order) {
        self.rows.clear();
        while self.open() {
            self.fill(order).await;
            self.rows.clear();
        }
    }
}

/// The merge of several nodes' answers.
pub struct Merge {
    order: Order,
    sources: Vec<Source>,
    /// The place of the last row passed on, and the reads (owning force,
    /// BOF read id) passed on at it.
    last: Option<Key>,
    seen: HashSet<(String, String)>,
    duplicates: u64,
    /// When the last row was passed on: the time until the next is asked
    /// for is the consumer's (a slow client's), not the peers'.
    passed_at: Option<Instant>,
}

/// What the nodes said besides their rows, once every answer has ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// Each node's outcome, in the order the sources were given: whether
    /// it answered in full, the rows it sent, and why not.
    pub outcomes: Vec<pb::NodeOutcome>,
    /// Their per-VRM summaries, as sent (not yet united).
    pub vrms: Vec<pb::VrmAreaSummary>,
    /// Matching rows in all: the nodes' totals (of a node that failed, the
    /// rows it sent), less the reads held twice that the merge met.
    pub total_rows: u64,
    /// Whether any node cut its answer at its limit.
    pub truncated: bool,
    /// The earliest start a node clipped the window to, if any did.
    pub clipped_from: Option<prost_types::Timestamp>,
    /// Every node's silent cameras (each camera is one node's).
    pub silent_cameras: Vec<pb::CameraHealthRow>,
    /// The replicas that answered while behind the log.
    pub stale: Vec<pb::StaleReplica>,
}

impl Merge {
    /// Merges `sources` in `order`.
    pub fn new(order: Order, sources: Vec<Source>) -> Self {
        Self {
            order,
            sources,
            last: None,
            seen: HashSet::new(),
            duplicates: 0,
            passed_at: None,
        }
    }

    /// Moves every peer's deadline on by the time the consumer took since
    /// the last row was passed on: a peer has its deadline to answer, and
    /// the time its answer waits on a slow client is not its.
    fn resume(&mut self) {
        let Some(at) = self.passed_at.take() else {
            return;
        };
        let idle = at.elapsed();
        for s in &mut self.sources {
            if let Some((deadline, _)) = &mut s.deadline {
                *deadline += idle;
            }
        }
    }

    /// The next row in the merged order, or `None` once every answer has
    /// ended. Waits, within each peer's deadline, until every node still
    /// answering has a row to compare.
    pub async fn next(&mut self) -> Option<pb::ReadRow> {
        self.resume();
        loop {
            let order = self.order;
            let starved = |s: &Source| s.rows.is_empty() && s.open();
            if self.sources.iter().any(starved) {
                futures::future::join_all(
                    self.sources
                        .iter_mut()
                        .filter(|s| starved(s))
                        .map(|s| s.fill(order)),
                )
                .await;
            }
            let (i, _) = self
                .sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.rows.front().map(|(k, _)| (i, k)))
                .min_by(|a, b| a.1.cmp(b.1))?;
            let (key, row) = self.sources[i].rows.pop_front()?;
            if !self.last.as_ref().is_some_and(|l| l.same_place(&key)) {
                self.seen.clear();
            }
            self.last = Some(key);
            let p = row.provenance.clone().unwrap_or_default();
            if self.seen.insert((p.owning_force, p.bof_read_id)) {
                self.passed_at = Some(Instant::now());
                return Some(row);
            }
            self.duplicates += 1;
        }
    }

    /// Reads every answer to its end (dropping rows not taken) and sums up.
    /// Fails if the node searched failed: its error is the search's.
    pub async fn finish(mut self) -> Result<Ended, Status> {
        self.resume();
        let order = self.order;
        futures::future::join_all(self.sources.iter_mut().map(|s| s.drain(order))).await;
        let mut ended = Ended::default();
        for s in self.sources {
            let mut outcome = pb::NodeOutcome {
                node: s.node,
                rows: s.received,
                ..Default::default()
            };
            match s.state {
                State::Done(summary) => {
                    outcome.ok = true;
                    ended.total_rows += summary.total_rows;
                    ended.truncated |= summary.truncated;
                    ended.clipped_from = ended.clipped_from.or(summary.clipped_from);
                    ended.silent_cameras.extend(summary.silent_cameras);
                    ended.stale.extend(summary.stale);
                }
                State::Failed(_, status) if s.local => return Err(status),
                State::Failed(why, _) => {
                    // Its total is not known; the rows it sent are matches.
                    ended.total_rows += s.received;
                    outcome.error = why;
                }
                State::Open => unreachable!("drained"),
            }
            if let Some(r) = s.replaced.as_ref().and_then(|slot| slot.get()) {
                outcome.replica = r.by.clone();
                outcome.replica_reason = r.why.clone();
            }
            ended.vrms.extend(s.vrms);
            ended.outcomes.push(outcome);
        }
        ended.total_rows = ended.total_rows.saturating_sub(self.duplicates);
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, seq: u64, ms: i64, force: &str, id: &str) -> pb::ReadRow {
        pb::ReadRow {
            vrm: "AB12CDE".into(),
            provenance: Some(pb::Provenance {
                owning_force: force.into(),
                bof_read_id: id.into(),
                node: node.into(),
                seq,
                observed_at: Some(nadc_proto::to_pb_time(nadc_core::Timestamp::from_millis(
                    ms,
                ))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn chunk(c: pb::search_chunk::Chunk) -> Result<pb::SearchChunk, Status> {
        Ok(pb::SearchChunk { chunk: Some(c) })
    }

    /// A node's answer: its rows in chunks of two, then a summary.
    fn answer(rows: Vec<pb::ReadRow>, total: u64) -> Vec<Result<pb::SearchChunk, Status>> {
        let mut out: Vec<_> = rows
            .chunks(2)
            .map(|c| {
                chunk(pb::search_chunk::Chunk::Rows(pb::RowBatch {
                    rows: c.to_vec(),
                }))
            })
            .collect();
        out.push(chunk(pb::search_chunk::Chunk::Summary(pb::SearchSummary {
            rows: rows.len() as u64,
            total_rows: total,
            ..Default::default()
        })));
        out
    }

    /// The merge of node n1's answer (the node searched) and peer n2's.
    fn local_and_peer(
        order: Order,
        n1: Vec<Result<pb::SearchChunk, Status>>,
        n2: Vec<Result<pb::SearchChunk, Status>>,
    ) -> Merge {
        Merge::new(
            order,
            vec![
                Source::local("n1", futures::stream::iter(n1).boxed()),
                Source::peer(
                    "n2",
                    futures::stream::iter(n2).boxed(),
                    Duration::from_secs(5),
                ),
            ],
        )
    }

    fn ids(rows: &[pb::ReadRow]) -> Vec<String> {
        rows.iter()
            .map(|r| r.provenance.clone().unwrap().bof_read_id)
            .collect()
    }

    async fn merged(mut m: Merge) -> (Vec<pb::ReadRow>, Result<Ended, Status>) {
        let mut rows = Vec::new();
        while let Some(r) = m.next().await {
            rows.push(r);
        }
        (rows, m.finish().await)
    }

    #[tokio::test]
    async fn merges_in_time_then_node_then_seq_and_keeps_a_read_held_twice_once() {
        let n1 = answer(
            vec![
                row("n1", 1, 10, "AVON", "a1"),
                row("n1", 2, 30, "AVON", "a2"),
                row("n1", 3, 30, "AVON", "a3"),
            ],
            3,
        );
        let n2 = answer(
            vec![
                row("n2", 7, 10, "AVON", "a1"), // the same read, held again
                row("n2", 1, 20, "KENT", "k1"),
                row("n2", 2, 30, "KENT", "k2"),
            ],
            5,
        );
        let m = local_and_peer(Order::Time, n1, n2);
        let (rows, ended) = merged(m).await;
        assert_eq!(ids(&rows), ["a1", "k1", "a2", "a3", "k2"]);
        let ended = ended.unwrap();
        assert_eq!(ended.total_rows, 3 + 5 - 1);
        assert!(ended.outcomes.iter().all(|o| o.ok));
        assert_eq!(ended.outcomes[1].rows, 3);
    }

    #[tokio::test]
    async fn ranks_vrm_matches_before_time() {
        let ranked = |node: &str, seq, ms, vrm: &str, kind: pb::vrm_match::Kind, d| {
            let mut r = row(node, seq, ms, "AVON", &format!("{node}{seq}"));
            r.vrm = vrm.into();
            r.r#match = Some(pb::VrmMatch {
                kind: kind as i32,
                distance: d,
                ..Default::default()
            });
            r
        };
        use pb::vrm_match::Kind;
        let n1 = answer(
            vec![
                ranked("n1", 1, 50, "AB12CDE", Kind::Exact, 0),
                ranked("n1", 2, 10, "AB12CDF", Kind::Edits, 1),
            ],
            2,
        );
        let n2 = answer(
            vec![
                ranked("n2", 1, 90, "AB12CDE", Kind::Exact, 0),
                ranked("n2", 2, 5, "A812CDE", Kind::Confusable, 0),
            ],
            2,
        );
        let m = local_and_peer(Order::Rank, n1, n2);
        let (rows, _) = merged(m).await;
        assert_eq!(ids(&rows), ["n11", "n21", "n22", "n12"]);
    }

    #[tokio::test]
    async fn a_peer_failing_mid_answer_keeps_its_rows_and_names_its_error() {
        let mut n2 = answer(vec![row("n2", 1, 20, "KENT", "k1")], 1);
        n2.pop();
        n2.push(Err(Status::unavailable("disk on fire")));
        let n1 = answer(vec![row("n1", 1, 10, "AVON", "a1")], 1);
        let m = local_and_peer(Order::Time, n1, n2);
        let (rows, ended) = merged(m).await;
        assert_eq!(ids(&rows), ["a1", "k1"]);
        let ended = ended.unwrap();
        assert!(!ended.outcomes[1].ok);
        assert!(
            ended.outcomes[1].error.contains("disk on fire"),
            "{}",
            ended.outcomes[1].error
        );
        // Its rows count: a partial answer's total is never below its rows.
        assert_eq!(ended.total_rows, 2);
    }

    /// Random national answers against a reference merge written here: up
    /// to four nodes, reads held on one to all of them (so ties in time
    /// and reads held twice abound), answers in chunks of random sizes,
    /// and sometimes a peer failing after a random number of chunks. The
    /// merge gives exactly the reference's rows, in its order: every row
    /// of every node that answered, and of the failed node those it sent
    /// before failing, sorted by time, node and sequence number, each read
    /// (force, BOF read id) once, at its first place.
    #[tokio::test]
    async fn random_answers_merge_as_the_reference_merges_them() {
        use rand::{Rng, SeedableRng};
        for case in 0..300u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case);
            let nodes: Vec<String> = (1..=rng.random_range(2..=4usize))
                .map(|i| format!("n{i}"))
                .collect();
            // Each node's rows: (millis, seq, force, id).
            let mut held: Vec<Vec<(i64, u64, &str, String)>> = vec![Vec::new(); nodes.len()];
            for r in 0..rng.random_range(0..40) {
                let millis = rng.random_range(0..12i64);
                let force = if rng.random_bool(0.5) { "AVON" } else { "KENT" };
                let id = format!("r{r}");
                let mut on: Vec<usize> =
                    (0..nodes.len()).filter(|_| rng.random_bool(0.5)).collect();
                if on.is_empty() {
                    on.push(rng.random_range(0..nodes.len()));
                }
                for n in on {
                    held[n].push((millis, 0, force, id.clone()));
                }
            }
            for rows in &mut held {
                rows.sort_by(|a, b| (a.0, &a.3).cmp(&(b.0, &b.3)));
                for (seq, r) in rows.iter_mut().enumerate() {
                    r.1 = seq as u64 + 1;
                }
            }
            // Perhaps one peer fails after `k` chunks.
            let failing =
                (nodes.len() > 1 && rng.random_bool(0.5)).then(|| rng.random_range(1..nodes.len()));
            let mut sources = Vec::new();
            let mut sent: Vec<Vec<(i64, u64, &str, String)>> = Vec::new();
            for (n, rows) in held.iter().enumerate() {
                let mut chunks = Vec::new();
                let mut at = 0;
                while at < rows.len() {
                    let size = rng.random_range(1..=4).min(rows.len() - at);
                    chunks.push(rows[at..at + size].to_vec());
                    at += size;
                }
                let keep = match failing {
                    Some(f) if f == n => rng.random_range(0..=chunks.len()),
                    _ => chunks.len(),
                };
                sent.push(chunks[..keep].concat());
                let mut stream: Vec<Result<pb::SearchChunk, Status>> = chunks[..keep]
                    .iter()
                    .map(|c| {
                        chunk(pb::search_chunk::Chunk::Rows(pb::RowBatch {
                            rows: c
                                .iter()
                                .map(|r| row(&nodes[n], r.1, r.0, r.2, &r.3))
                                .collect(),
                        }))
                    })
                    .collect();
                if failing == Some(n) {
                    stream.push(Err(Status::unavailable("gone")));
                } else {
                    stream.push(chunk(pb::search_chunk::Chunk::Summary(pb::SearchSummary {
                        rows: rows.len() as u64,
                        total_rows: rows.len() as u64,
                        ..Default::default()
                    })));
                }
                let stream = futures::stream::iter(stream).boxed();
                sources.push(if n == 0 {
                    Source::local(&nodes[n], stream)
                } else {
                    Source::peer(&nodes[n], stream, Duration::from_secs(5))
                });
            }
            // The reference: everything sent, in the total order, each
            // read once.
            let names = &nodes;
            let mut all: Vec<(i64, &str, u64, &str, &str)> = sent
                .iter()
                .enumerate()
                .flat_map(|(n, rows)| {
                    rows.iter()
                        .map(move |r| (r.0, names[n].as_str(), r.1, r.2, r.3.as_str()))
                })
                .collect();
            all.sort();
            let mut once = std::collections::BTreeSet::new();
            let want: Vec<(String, u64)> = all
                .into_iter()
                .filter(|r| once.insert((r.3, r.4)))
                .map(|r| (r.1.to_string(), r.2))
                .collect();
            let (rows, ended) = merged(Merge::new(Order::Time, sources)).await;
            let got: Vec<(String, u64)> = rows
                .iter()
                .map(|r| {
                    let p = r.provenance.clone().unwrap();
                    (p.node, p.seq)
                })
                .collect();
            assert_eq!(got, want, "case {case}");
            let ended = ended.unwrap();
            assert_eq!(ended.total_rows as usize, want.len(), "case {case}: total");
            for (n, o) in ended.outcomes.iter().enumerate() {
                assert_eq!(o.ok, failing != Some(n), "case {case}: {o:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_silent_peer_costs_its_deadline_and_no_more() {
        let n1 = answer(vec![row("n1", 1, 10, "AVON", "a1")], 1);
        let silent = futures::stream::pending().boxed();
        let started = std::time::Instant::now();
        let mut m = Merge::new(
            Order::Time,
            vec![
                Source::local("n1", futures::stream::iter(n1).boxed()),
                Source::peer("n2", silent, Duration::from_millis(200)),
            ],
        );
        let first = m.next().await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(ids(&[first.unwrap()]), ["a1"]);
        let ended = m.finish().await.unwrap();
        assert!(ended.outcomes[1].error.contains("200 ms deadline"));
    }

    /// A client slower than a peer's deadline does not fail the peer: the
    /// deadline counts the time the merge waits for the peer, not the time
    /// the peer's answer waits for the client. (Tokio's paused clock: the
    /// client's minute passes at once.)
    #[tokio::test(start_paused = true)]
    async fn a_slow_client_does_not_use_up_a_peers_deadline() {
        let n1 = answer(
            (1..=6)
                .map(|i| row("n1", i, i as i64 * 10, "AVON", &format!("a{i}")))
                .collect(),
            6,
        );
        let n2 = answer(
            (1..=6)
                .map(|i| row("n2", i, i as i64 * 10 + 5, "KENT", &format!("k{i}")))
                .collect(),
            6,
        );
        // Each of the peer's chunks takes it 10 ms.
        let n2 = futures::stream::iter(n2).then(|c| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            c
        });
        let mut m = Merge::new(
            Order::Time,
            vec![
                Source::local("n1", futures::stream::iter(n1).boxed()),
                Source::peer("n2", n2.boxed(), Duration::from_secs(5)),
            ],
        );
        let mut rows = Vec::new();
        while let Some(r) = m.next().await {
            rows.push(r);
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        assert_eq!(rows.len(), 12);
        let ended = m.finish().await.unwrap();
        assert!(ended.outcomes[1].ok, "{:?}", ended.outcomes[1]);
        assert_eq!(ended.total_rows, 12);
    }

    #[tokio::test]
    async fn rows_pass_on_before_a_slow_answer_ends() {
        // n2 sends its first row at once and the rest never: the rows
        // before it in the order come through while it is still open.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(chunk(pb::search_chunk::Chunk::Rows(pb::RowBatch {
            rows: vec![row("n2", 1, 40, "KENT", "k1")],
        })))
        .await
        .unwrap();
        let n1 = answer(
            vec![
                row("n1", 1, 10, "AVON", "a1"),
                row("n1", 2, 20, "AVON", "a2"),
            ],
            2,
        );
        let mut m = Merge::new(
            Order::Time,
            vec![
                Source::local("n1", futures::stream::iter(n1).boxed()),
                Source::peer(
                    "n2",
                    tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
                    Duration::from_secs(30),
                ),
            ],
        );
        let first_two = tokio::time::timeout(Duration::from_secs(5), async {
            vec![m.next().await.unwrap(), m.next().await.unwrap()]
        })
        .await
        .expect("the rows before the open answer's first row are not held back");
        assert_eq!(ids(&first_two), ["a1", "a2"]);
        drop(tx);
    }

    #[tokio::test]
    async fn the_searched_nodes_failure_fails_the_search() {
        let n1 = vec![Err(Status::unavailable("store gone"))];
        let m = Merge::new(
            Order::Time,
            vec![Source::local("n1", futures::stream::iter(n1).boxed())],
        );
        let (_, ended) = merged(m).await;
        assert_eq!(ended.unwrap_err().code(), tonic::Code::Unavailable);
    }
}
