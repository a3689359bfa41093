//! Starvation (issue 19, class 9): clients that open searches and never
//! read them hold no search worker (their results wait in a spool), are cut
//! off, and cannot stop ingest or live alerting; handshakes are bounded in
//! time.

mod support;

use std::time::{Duration, Instant};

use nadc_bof::pb;
use pb::alerts_client::AlertsClient as Alerts;
use pb::audit_client::AuditClient;
use pb::search_client::SearchClient;
use support::{Harness, access, batch, read};
use tokio::io::AsyncReadExt;

/// Reads of one VRM pushed before the searches: enough that a search of
/// them fills its channel and the HTTP/2 windows of a client that never
/// reads (a chunk is 500 rows).
const ROWS: usize = 6_000;
const VRM: &str = "AB12CDE";

/// A node whose blocking pool is small (64 threads, as a small node's
/// share would be): without search workers, stalled searches fill it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .unwrap()
}

async fn push(h: &Harness, reads: Vec<pb::Read>) -> pb::BatchResult {
    let mut c = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    c.push_batch(batch(reads)).await.unwrap().into_inner()
}

/// `ROWS` reads of [`VRM`] at C1, a minute apart.
async fn fill(h: &Harness) {
    h.cameras("AVON", 2).await;
    for part in 0..ROWS / 1_000 {
        let reads = (0..1_000)
            .map(|i| {
                let n = part * 1_000 + i;
                read(&format!("r{n}"), VRM, "C1", 10 + n as i64)
            })
            .collect();
        assert_eq!(push(h, reads).await.accepted, 1_000);
    }
}

fn timeline(limit: u32) -> pb::VrmTimelineRequest {
    pb::VrmTimelineRequest {
        access: access(),
        vrm: VRM.into(),
        limit,
        ..Default::default()
    }
}

/// Opens a timeline of every row and never reads it.
async fn stalled(
    c: &mut SearchClient<tonic::transport::Channel>,
) -> Result<tonic::Streaming<pb::SearchChunk>, tonic::Status> {
    c.vrm_timeline(timeline(ROWS as u32 + 1))
        .await
        .map(|r| r.into_inner())
}

/// Reads a search to its end; the number of rows and whether a summary came.
async fn read_all(mut s: tonic::Streaming<pb::SearchChunk>) -> (usize, bool) {
    let (mut rows, mut summary) = (0, false);
    while let Some(c) = s.message().await.unwrap() {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => rows += b.rows.len(),
            pb::search_chunk::Chunk::Summary(_) => summary = true,
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    (rows, summary)
}

/// Reads a search until it ends or fails: rows and whether a summary came.
async fn read_all_lenient(mut s: tonic::Streaming<pb::SearchChunk>) -> (usize, bool) {
    let (mut rows, mut summary) = (0, false);
    while let Ok(Some(c)) = s.message().await {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => rows += b.rows.len(),
            pb::search_chunk::Chunk::Summary(_) => summary = true,
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    (rows, summary)
}

#[test]
fn hundreds_of_unread_searches_do_not_stop_ingest_or_live_alerts() {
    runtime().block_on(async {
        let mut h = Harness::start().await;
        h.configure = |cfg| {
            // The per-user cap is not what is tested here; nobody is cut
            // off, and a search may wait long for a worker: no worker may
            // stay held by a search nobody reads.
            cfg.limits.searches_per_user = 1_000;
            cfg.limits.stalled_reader_s = 600;
            cfg.limits.search_queue_ms = 60_000;
        };
        h.restart().await;
        fill(&h).await;
        h.hotlist("harry", "wanted", "WA12NTD").await;
        let mut watch = Alerts::new(h.user("alice").await)
            .watch(pb::WatchRequest {
                from_now: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();

        // 300 searches over three connections (at most 256 streams each),
        // none ever read.
        let mut clients = Vec::new();
        for user in ["alice", "ivan", "sam"] {
            clients.push(SearchClient::new(h.user(user).await));
        }
        let opens = (0..300).map(|i| {
            let mut c = clients[i % 3].clone();
            async move { stalled(&mut c).await }
        });
        let held: Vec<_> = futures::future::join_all(opens)
            .await
            .into_iter()
            .map(|o| o.expect("every search gets a worker in turn"))
            .collect();
        // Their results wait for readers that never come, holding no
        // worker: another user's search runs and ends at once.
        let (rows, summary) = read_all(
            SearchClient::new(h.user("dora").await)
                .vrm_timeline(timeline(10))
                .await
                .unwrap()
                .into_inner(),
        )
        .await;
        assert_eq!((rows, summary), (10, true));

        // With 300 searches unread, a BOF's push and the live alert it
        // raises still go through, within a generous bound.
        let bound = Duration::from_secs(10);
        let started = Instant::now();
        let pushed = tokio::time::timeout(bound, push(&h, vec![read("hit", "WA12NTD", "C2", 1)]))
            .await
            .expect("the push completes while searches stall");
        assert_eq!(pushed.accepted, 1);
        let alert = tokio::time::timeout(bound, watch.message())
            .await
            .expect("the live alert arrives while searches stall")
            .unwrap()
            .expect("the watch stays open");
        assert_eq!(alert.read.unwrap().vrm, "WA12NTD");
        eprintln!(
            "{} searches unread; push and alert in {:?}",
            held.len(),
            started.elapsed()
        );
        drop(held);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unread_search_holds_no_worker_and_arrives_whole_when_read() {
    let mut h = Harness::start().await;
    h.configure = |cfg| {
        // One worker, nobody cut off, a long wait for a worker, and little
        // memory for results: the unread search's rows go to disk.
        cfg.limits.search_workers = 1;
        cfg.limits.stalled_reader_s = 600;
        cfg.limits.search_queue_ms = 60_000;
        cfg.limits.spool_memory_bytes = 64 << 10;
    };
    h.restart().await;
    fill(&h).await;
    let held = stalled(&mut SearchClient::new(h.user("alice").await))
        .await
        .unwrap();
    // The one worker is free once alice's search is computed, though she
    // reads nothing: ivan's search runs.
    let (rows, summary) = read_all(
        SearchClient::new(h.user("ivan").await)
            .vrm_timeline(timeline(10))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!((rows, summary), (10, true));
    // Read at last, alice's answer is whole and in time order.
    let mut s = held;
    let (mut times, mut ids, mut summary) = (Vec::new(), std::collections::BTreeSet::new(), None);
    while let Some(c) = s.message().await.unwrap() {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => {
                for r in b.rows {
                    let p = r.provenance.unwrap();
                    times.push(p.observed_at.unwrap().seconds);
                    ids.insert(p.bof_read_id);
                }
            }
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    assert_eq!(ids.len(), ROWS);
    assert_eq!(times.len(), ROWS);
    assert!(times.windows(2).all(|w| w[0] < w[1]), "rows out of order");
    assert_eq!(summary.unwrap().rows, ROWS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_over_the_open_search_cap_is_refused_until_one_finishes() {
    let mut h = Harness::start().await;
    h.configure = |cfg| cfg.limits.searches_per_user = 2;
    h.restart().await;
    fill(&h).await;
    // Each on its own connection: a stream left unread holds its
    // connection's HTTP/2 window, which would stall the others on it.
    let mut alice = SearchClient::new(h.user("alice").await);
    let first = stalled(&mut alice).await.unwrap();
    let _second = stalled(&mut SearchClient::new(h.user("alice").await))
        .await
        .unwrap();
    let e = stalled(&mut SearchClient::new(h.user("alice").await))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(
        e.message().contains("searches_per_user is 2"),
        "{}",
        e.message()
    );
    // An alert watch counts among her open streams too (it takes no
    // search worker, but a stalled watch holds a thread while it waits).
    let e = Alerts::new(h.user("alice").await)
        .watch(pb::WatchRequest {
            from_now: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("searches_per_user"), "{}", e.message());
    // Another user has their own count.
    let mut ivan = SearchClient::new(h.user("ivan").await);
    let (rows, summary) =
        read_all(ivan.vrm_timeline(timeline(10)).await.unwrap().into_inner()).await;
    assert_eq!((rows, summary), (10, true));
    // Once one of hers is read to its end, alice may search again.
    assert_eq!(read_all(first).await, (ROWS, true));
    let (rows, summary) =
        read_all(alice.vrm_timeline(timeline(10)).await.unwrap().into_inner()).await;
    assert_eq!((rows, summary), (10, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_that_never_completes_its_handshake_is_closed() {
    let mut h = Harness::start().await;
    h.configure = |cfg| cfg.limits.handshake_timeout_ms = 300;
    h.restart().await;
    let addr = h.node.as_ref().unwrap().addr;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("the node closes a silent connection well within 10 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte sent");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_that_stalls_is_cut_off_audited_as_failed_and_may_search_again() {
    let mut h = Harness::start().await;
    h.configure = |cfg| {
        cfg.limits.stalled_reader_s = 1;
        cfg.limits.searches_per_user = 1;
    };
    h.restart().await;
    fill(&h).await;
    let mut alice = SearchClient::new(h.user("alice").await);
    let held = stalled(&mut alice).await.unwrap();
    // Nothing is read: the node cuts the search off and audits it. There is
    // no event to wait on but the entry itself, so the log is polled (paced,
    // bounded); correctness does not hang on the pace.
    let mut audit = AuditClient::new(h.user("audrey").await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let mut s = audit
            .query(pb::AuditQuery {
                user: "alice".into(),
                action: "search.vrm_timeline".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut closing = Vec::new();
        while let Some(e) = s.message().await.unwrap() {
            if e.outcome != "ok" {
                closing.push(e);
            }
        }
        assert!(closing.len() <= 1, "{closing:?}");
        if let Some(e) = closing.pop() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no audit entry for the cut-off search"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // What was buffered before the cut-off still arrives; the rest never
    // does, nor the summary.
    let (rows, summary) = read_all_lenient(held).await;
    assert!(!summary && rows < ROWS, "{rows} rows, summary {summary}");
    assert_eq!(entry.outcome, "failed", "{entry:?}");
    assert!(
        entry.reason.contains("read nothing for 1 s"),
        "{}",
        entry.reason
    );
    // Its place is free: alice (cap 1) searches again.
    let (rows, summary) =
        read_all(alice.vrm_timeline(timeline(10)).await.unwrap().into_inner()).await;
    assert_eq!((rows, summary), (10, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_is_closed_once_it_reaches_its_maximum_age() {
    let mut h = Harness::start().await;
    h.configure = |cfg| cfg.limits.max_connection_age_s = 1;
    h.restart().await;
    let addr = h.node.as_ref().unwrap().addr;
    let config = support::handshake::client_config(
        &h.layout.ca_cert(),
        &h.layout.user_cert("alice"),
        &h.layout.user_key("alice"),
    );
    // A client that completes TLS and HTTP/2's handshake, then asks nothing.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (_requests, connection) = h2::client::handshake(tls).await.unwrap();
    let started = Instant::now();
    // The connection ends when the node closes it (or fails on a reset).
    let ended = tokio::time::timeout(Duration::from_secs(15), connection).await;
    assert!(ended.is_ok(), "still open after 15 s");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}
