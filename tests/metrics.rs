//! The node's Prometheus endpoint, scraped over plain HTTP and parsed as
//! the text exposition format by a parser of the test's own: ingest counts
//! per force and outcome and per refusal reason, every RPC timed by
//! method and status (a refused search included), reads held per force;
//! no plate in it; nothing but `GET /metrics` served.

mod support;

use nadc_bof::pb;
use support::prom::{get, parse, scrape};
use support::{Harness, batch, read};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_ingest_and_times_every_rpc_and_discloses_no_plate() {
    let mut h = Harness::start().await;
    h.configure = |c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    h.restart().await;
    let addr = h.node.as_ref().unwrap().metrics_addr.unwrap();
    h.cameras("AVON", 2).await;

    // Two good reads and one bad plate, pushed twice.
    let b = batch(vec![
        read("m1", "MT51 ABC", "C1", 10),
        read("m2", "MT51 ABC", "C2", 5),
        read("m3", "MT51 AB€", "C1", 4),
    ]);
    let mut bof = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    for _ in 0..2 {
        let r = bof.push_batch(b.clone()).await.unwrap().into_inner();
        assert_eq!(r.rejected.len(), 1, "{r:?}");
    }
    // A search, and one refused (no purpose or case).
    let (rows, _) = h.timeline("alice", "MT51ABC").await;
    assert_eq!(rows.len(), 2);
    let mut search = pb::search_client::SearchClient::new(h.user("alice").await);
    let refused = search
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: "MT51ABC".into(),
            ..Default::default()
        })
        .await;
    let code = match refused {
        Err(s) => s.code(),
        Ok(r) => {
            let mut s = r.into_inner();
            loop {
                match s.message().await {
                    Err(e) => break e.code(),
                    Ok(None) => panic!("a search without purpose or case was answered"),
                    Ok(Some(_)) => {}
                }
            }
        }
    };
    assert_ne!(code, tonic::Code::Ok);

    let (head, body) = tokio::task::spawn_blocking(move || {
        scrape(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("content-type: text/plain"),
        "{head}"
    );
    let m = parse(&body);
    let reads = |outcome| {
        get(
            &m,
            "nadc_ingest_reads_total",
            &[("force", "AVON"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        (reads("accepted"), reads("duplicate"), reads("rejected")),
        (2.0, 2.0, 2.0)
    );
    assert_eq!(
        get(
            &m,
            "nadc_ingest_rejected_total",
            &[("force", "AVON"), ("reason", "invalid_vrm")]
        ),
        2.0
    );
    let rpc = |service: &str, method: &str, code: &str| {
        get(
            &m,
            "nadc_rpc_seconds_count",
            &[("service", service), ("method", method), ("code", code)],
        )
    };
    assert_eq!(rpc("nadc.v1.Ingest", "PushBatch", "OK"), 2.0);
    assert_eq!(rpc("nadc.v1.Search", "VrmTimeline", "OK"), 1.0);
    let refused_code = format!("{code:?}");
    let refused: f64 = m
        .iter()
        .filter(|((name, labels), _)| {
            name == "nadc_rpc_seconds_count"
                && labels
                    .iter()
                    .any(|(k, v)| k == "method" && v == "VrmTimeline")
                && labels.iter().any(|(k, v)| k == "code" && v != "OK")
        })
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(
        refused, 1.0,
        "the refused search ({refused_code}) is counted once"
    );
    assert_eq!(get(&m, "nadc_store_reads", &[("force", "AVON")]), 2.0);
    // Counts only: no plate, in any spelling.
    for plate in ["MT51", "ABC"] {
        assert!(!body.contains(plate), "{plate} in the metrics");
    }

    // Nothing else is served.
    let (head, _) = tokio::task::spawn_blocking(move || {
        scrape(
            addr,
            "GET /cases HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = tokio::task::spawn_blocking(move || {
        scrape(addr, "POST /metrics HTTP/1.1\r\nHost: node\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
}
