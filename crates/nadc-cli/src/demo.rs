//! `nadc demo`: a PKI, a node on an embedded RocksDB in a temporary
//! directory, simulated force BOFs pushing a synthetic day of traffic over
//! mTLS, and sample searches: the whole system in one command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use nadc_bof::push::{PushOptions, push_rows};
use nadc_bof::{ClientTls, pb};
use nadc_core::time::Clock;
use nadc_core::{ForceId, Role, Timestamp};
use nadc_node::{NodeConfig, TlsFiles};
use nadc_pki::{InitSpec, PkiLayout};
use nadc_store::{RocksStore, StoreOptions};

use crate::client::{collect_stream, geo_search, print_push_report, vrm_timeline};
use crate::output::{OutputFormat, print_rows, print_vrm_summaries};
use crate::synth::{SOUTH, SynthConfig, generate};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Simulated vehicles.
    #[arg(long, default_value_t = 20_000)]
    vehicles: usize,
    /// Random seed for the synthetic traffic.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Keep the data, PKI and node in this directory instead of a temporary
    /// one (the node stops when the demo ends; restart it with `nadc serve`).
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// The purpose and case alice searches under in the demo.
fn demo_access() -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: "DEMO-OP-1".into(),
        ..Default::default()
    })
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

fn tls_for(layout: &PkiLayout, cert: PathBuf, key: PathBuf) -> ClientTls {
    ClientTls {
        ca: layout.ca_cert(),
        cert,
        key,
    }
}

pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let tmp;
    let root = match &a.keep {
        Some(p) => {
            std::fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))?;
            p.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let forces: Vec<ForceId> = ["AVON", "KENT", "MET", "WMP"]
        .iter()
        .map(|f| ForceId::new(f))
        .collect::<Result<_, _>>()?;

    step(1, "development PKI");
    let pki_dir = root.join("pki");
    let analyst = ("alice".to_string(), vec![Role::Analyst], forces[0].clone());
    let spec = InitSpec {
        node_names: vec!["node-1".into()],
        forces: forces.clone(),
        users: vec![
            analyst.clone(),
            (
                "bob".to_string(),
                vec![Role::Investigator],
                forces[1].clone(),
            ),
            (
                "harry".to_string(),
                vec![Role::HotlistManager],
                forces[0].clone(),
            ),
        ],
        ..Default::default()
    };
    let layout = nadc_pki::init(&pki_dir, &spec, true).context("create the demo PKI")?;
    println!(
        "CA, node certificate node-1, BOF certificates for {}, users alice (analyst, AVON), bob (investigator, KENT) and harry (hotlist manager, AVON) in {}",
        forces
            .iter()
            .map(ForceId::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        pki_dir.display()
    );

    step(2, "node on an embedded RocksDB, mTLS on 127.0.0.1");
    let data_dir = root.join("data");
    let mut cfg = NodeConfig::new(
        data_dir.clone(),
        TlsFiles {
            ca: layout.ca_cert(),
            cert: layout.node_cert("node-1"),
            key: layout.node_key("node-1"),
            crl: Vec::new(),
        },
    );
    cfg.listen = "127.0.0.1:0".parse()?;
    let store = {
        let d = data_dir.clone();
        tokio::task::spawn_blocking(move || RocksStore::open(&d, StoreOptions::default())).await??
    };
    let node = nadc_node::start(&cfg, Arc::new(store))
        .await
        .context("start the node")?;
    let url = format!("https://{}", node.addr);
    println!(
        "node {} serving {url} (data in {})",
        node.name,
        data_dir.display()
    );

    step(3, "synthetic day of national traffic");
    let today = nadc_core::time::SystemClock.now();
    let day_start = Timestamp::from_day_ms(today.day().saturating_sub(1), 0);
    let synth = generate(&SynthConfig::new(a.seed, a.vehicles, day_start).in_forces(&SOUTH));
    println!(
        "{} vehicles, {} cameras, {} reads on {} (UTC) across {} forces",
        a.vehicles,
        synth.cameras.values().map(Vec::len).sum::<usize>(),
        synth.total_reads(),
        &day_start.to_rfc3339()[..10],
        synth.reads.len()
    );

    step(
        4,
        "each force's BOF registers its cameras (BOF certificate, over mTLS)",
    );
    for f in &forces {
        let tls = tls_for(&layout, layout.bof_cert(f), layout.bof_key(f));
        let mut admin = pb::admin_client::AdminClient::new(nadc_bof::connect(&url, &tls).await?);
        let cameras = synth.cameras.get(f).cloned().unwrap_or_default();
        let r = admin
            .import_cameras(pb::ImportCamerasRequest { cameras })
            .await
            .map_err(nadc_bof::ClientError::from)?
            .into_inner();
        println!(
            "{f:<5} {} cameras registered, {} rejected",
            r.stored,
            r.rejected.len()
        );
    }

    step(
        5,
        "hotlist manager harry (AVON) lists the convoy target; alice subscribes to alerts",
    );
    let harry_tls = tls_for(&layout, layout.user_cert("harry"), layout.user_key("harry"));
    let alice_tls = tls_for(&layout, layout.user_cert("alice"), layout.user_key("alice"));
    let alice_ch = nadc_bof::connect(&url, &alice_tls).await?;
    if let Some((target, _)) = &synth.convoy {
        hotlist_target(&url, &harry_tls, target, today).await?;
    }
    let (alert_tx, mut alert_rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(collect_alerts(alice_ch.clone(), alert_tx));

    step(
        6,
        "four force BOFs push their reads at once (durable acknowledgements)",
    );
    let push_started = Instant::now();
    let mut tasks = Vec::new();
    for f in &forces {
        let tls = tls_for(&layout, layout.bof_cert(f), layout.bof_key(f));
        let reads = synth.reads.get(f).cloned().unwrap_or_default();
        let url = url.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let ch = nadc_bof::connect(&url, &tls).await?;
            let rows: nadc_bof::format::Rows<pb::Read> = Box::new(reads.into_iter().map(Ok));
            let t = Instant::now();
            let report = push_rows(
                ch,
                rows,
                PushOptions {
                    batch_size: 2000,
                    window: 8,
                },
                |_| {},
            )
            .await?;
            Ok::<_, nadc_bof::ClientError>((f, report, t.elapsed()))
        }));
    }
    let mut total = 0;
    for t in tasks {
        let (f, report, elapsed) = t.await??;
        total += report.totals.accepted;
        print!("{f:<5} ");
        print_push_report(&report, elapsed, false);
    }
    let secs = push_started.elapsed().as_secs_f64();
    println!(
        "all forces: {total} reads stored in {secs:.2} s ({:.0} reads/s with synced, indexed acknowledgements)",
        total as f64 / secs
    );

    step(
        7,
        "alerts raised as the reads arrived (hits are logged with the read, in the same write)",
    );
    // Convoy analysis runs just after each hit is acknowledged: give the
    // last ones a moment, then stop watching.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    watcher.abort();
    let mut alerts = Vec::new();
    while let Ok(e) = alert_rx.try_recv() {
        alerts.push(e);
    }
    print_alerts(&alerts);

    step(
        8,
        "bad reads are refused one by one; the good ones in the same batch are kept",
    );
    let avon = &forces[0];
    let avon_tls = tls_for(&layout, layout.bof_cert(avon), layout.bof_key(avon));
    let avon_ch = nadc_bof::connect(&url, &avon_tls).await?;
    let mut sample = synth.reads[avon][..3].to_vec();
    let good = pb::Read {
        read_id: "AVON-DEMO-GOOD".into(),
        ..sample[0].clone()
    };
    sample[1].vrm = "AB12 CD€".into();
    sample[1].read_id = "AVON-DEMO-BADVRM".into();
    sample[2].read_id = "AVON-DEMO-BADCAM".into();
    sample[2].camera_id = "NO-SUCH-CAMERA".into();
    let mut far_future = sample[0].clone();
    far_future.read_id = "AVON-DEMO-FUTURE".into();
    far_future.observed_at = Some(nadc_proto::to_pb_time(today.plus_millis(86_400_000)));
    let batch = vec![
        good,
        sample[1].clone(),
        sample[2].clone(),
        far_future,
        synth.reads[avon][0].clone(),
    ];
    let r = nadc_bof::push::push_batch(
        avon_ch.clone(),
        pb::ReadBatch {
            batch_seq: 1,
            force: String::new(),
            reads: batch,
        },
    )
    .await?;
    println!(
        "batch of 5: accepted {}, duplicates {} (a read already pushed), rejected {}:",
        r.accepted,
        r.duplicates,
        r.rejected.len()
    );
    for x in &r.rejected {
        println!(
            "  read {} ({}): {}: {}",
            x.index,
            x.read_id,
            nadc_proto::code_name(x.code),
            x.message
        );
    }

    step(
        9,
        "identity comes from the certificate: KENT's BOF cannot push as AVON, a user cannot push",
    );
    let kent = &forces[1];
    let kent_ch = nadc_bof::connect(
        &url,
        &tls_for(&layout, layout.bof_cert(kent), layout.bof_key(kent)),
    )
    .await?;
    let claim = pb::ReadBatch {
        batch_seq: 1,
        force: "AVON".into(),
        reads: synth.reads[kent][..1].to_vec(),
    };
    match nadc_bof::push::push_batch(kent_ch, claim).await {
        Err(e) => println!("KENT BOF claiming AVON: refused: {e}"),
        Ok(_) => anyhow::bail!("a KENT BOF pushed as AVON: identity check failed"),
    }
    let attempt = pb::ReadBatch {
        batch_seq: 1,
        force: String::new(),
        reads: synth.reads[avon][..1].to_vec(),
    };
    match nadc_bof::push::push_batch(alice_ch.clone(), attempt).await {
        Err(e) => println!("user alice pushing reads: refused: {e}"),
        Ok(_) => anyhow::bail!("a user certificate pushed reads: role check failed"),
    }

    step(10, "searches as analyst alice (AVON)");
    if let Some((target, companion)) = &synth.convoy {
        for (label, plate) in [
            ("convoy target", target),
            ("planted companion, travelling with it", companion),
        ] {
            let query = plate.to_lowercase();
            println!("\nnadc search vrm {query:?}: timeline of the {label}");
            let (rows, summary) = vrm_timeline(
                alice_ch.clone(),
                pb::VrmTimelineRequest {
                    scope: 0,
                    on_behalf_of: None,
                    access: demo_access(),
                    vrm: query,
                    from: None,
                    to: None,
                    limit: 0,
                },
            )
            .await?;
            print_rows(
                &mut std::io::stdout().lock(),
                OutputFormat::Table,
                &rows,
                summary.as_ref(),
                true,
            )?;
            if label == "convoy target" && rows.len() >= 2 {
                // Who was at the target's first and last sightings, each
                // within 15 minutes? (A geographic ALL search.)
                let (a, b) = (&rows[0], &rows[rows.len() - 1]);
                let area = |r: &pb::ReadRow| {
                    let t = r
                        .provenance
                        .as_ref()
                        .and_then(|p| p.observed_at.as_ref())
                        .and_then(nadc_proto::from_pb_time)
                        .unwrap_or(day_start);
                    pb::Area {
                        lat: r.lat,
                        lon: r.lon,
                        radius_m: 300.0,
                        from: Some(nadc_proto::to_pb_time(t.plus_millis(-15 * 60_000))),
                        to: Some(nadc_proto::to_pb_time(t.plus_millis(15 * 60_000))),
                        polygon: String::new(),
                    }
                };
                println!(
                    "\nnadc search geo --match all --by-vrm: vehicles within 300 m of both the first and the last sighting, 15 minutes either side"
                );
                let c = geo_search(
                    alice_ch.clone(),
                    pb::GeoSearchRequest {
                        access: demo_access(),
                        areas: vec![area(a), area(b)],
                        r#match: pb::AreaMatch::All as i32,
                        ..Default::default()
                    },
                )
                .await?;
                print_vrm_summaries(
                    &mut std::io::stdout().lock(),
                    OutputFormat::Table,
                    &c.vrms,
                    None,
                )?;
            }
        }
        // An OCR-fuzzy search: the target's plate as a camera might misread it.
        let misread: String = target
            .chars()
            .map(|c| match c {
                'B' => '8',
                '0' => 'O',
                'S' => '5',
                'I' => '1',
                c => c,
            })
            .collect();
        println!("\nnadc search vrm {misread:?} --fuzzy --by-vrm: how each vehicle found matched");
        let mut search = pb::search_client::SearchClient::new(alice_ch.clone());
        let stream = search
            .vrm_search(pb::VrmSearchRequest {
                access: demo_access(),
                pattern: misread,
                fuzzy: true,
                max_edits: Some(1),
                ..Default::default()
            })
            .await
            .map_err(nadc_bof::ClientError::from)?
            .into_inner();
        let c = collect_stream(stream).await?;
        print_vrm_summaries(
            &mut std::io::stdout().lock(),
            OutputFormat::Table,
            &c.vrms,
            None,
        )?;
        convoy_and_clones(&alice_ch, target, day_start).await?;
        println!(
            "\nnadc analyse hotspots {target} --from DAY --to DAY+1 --limit 5: where and when the target is seen most"
        );
        let spots = pb::analysis_client::AnalysisClient::new(alice_ch.clone())
            .hot_spots(pb::HotSpotsRequest {
                access: demo_access(),
                vrms: vec![target.clone()],
                from: Some(nadc_proto::to_pb_time(day_start)),
                to: Some(nadc_proto::to_pb_time(day_start.plus_millis(86_400_000))),
                limit: 5,
                ..Default::default()
            })
            .await
            .map_err(nadc_bof::ClientError::from)?
            .into_inner();
        crate::analyse::print_hot_spots(
            &mut std::io::stdout().lock(),
            OutputFormat::Table,
            &spots,
        )?;
    }
    let mut admin = pb::admin_client::AdminClient::new(alice_ch);
    let info = admin
        .node_info(pb::NodeInfoRequest {})
        .await
        .map_err(nadc_bof::ClientError::from)?
        .into_inner();
    println!(
        "\nnode info: {} reads held; per owning force: {}",
        info.reads,
        info.forces
            .iter()
            .map(|f| format!("{} {}", f.force, f.rows))
            .collect::<Vec<_>>()
            .join(", ")
    );

    step(11, "shutdown (flushes the store)");
    node.shutdown().await.context("shut the node down")?;
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if a.keep.is_some() {
        println!(
            "\nThe data and PKI are kept in {}. Serve it again with:\n  nadc serve --data {} --tls-dir {}\nand search as alice with:\n  nadc search vrm VRM --node https://127.0.0.1:7443 --ca {} --cert {} --key {}",
            root.display(),
            data_dir.display(),
            pki_dir.display(),
            layout.ca_cert().display(),
            layout.user_cert("alice").display(),
            layout.user_key("alice").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Follows the alert stream, passing every alert on.
async fn collect_alerts(
    ch: tonic::transport::Channel,
    out: tokio::sync::mpsc::UnboundedSender<pb::AlertEvent>,
) -> anyhow::Result<()> {
    let mut alerts = pb::alerts_client::AlertsClient::new(ch);
    let mut stream = alerts
        .watch(pb::WatchRequest::default())
        .await
        .map_err(nadc_bof::ClientError::from)?
        .into_inner();
    while let Some(e) = stream
        .message()
        .await
        .map_err(nadc_bof::ClientError::from)?
    {
        if out.send(e).is_err() {
            break;
        }
    }
    Ok(())
}

/// Harry creates a fuzzy list with the convoy target on it, flagged for
/// real-time convoy analysis.
async fn hotlist_target(
    url: &str,
    tls: &ClientTls,
    target: &str,
    now: Timestamp,
) -> anyhow::Result<()> {
    let mut c = pb::hotlists_client::HotlistsClient::new(nadc_bof::connect(url, tls).await?);
    c.create_hotlist(pb::CreateHotlistRequest {
        name: "serious-crime".into(),
        purpose: "serious crime".into(),
        description: "demo list".into(),
        fuzzy: true,
        max_edits: 0,
        ..Default::default()
    })
    .await
    .map_err(nadc_bof::ClientError::from)?;
    c.add_entries(pb::AddEntriesRequest {
        list: Some(pb::HotlistRef {
            owner: String::new(),
            name: "serious-crime".into(),
        }),
        entries: vec![pb::HotlistEntry {
            vrm: target.to_string(),
            reason: "suspected of armed robbery".into(),
            intel_ref: "DEMO/INT/0001".into(),
            action: pb::Action::Notify as i32,
            convoy: true,
            expires_at: Some(nadc_proto::to_pb_time(now.plus_millis(7 * 86_400_000))),
            ..Default::default()
        }],
        look_back_days: 0,
        access: None,
    })
    .await
    .map_err(nadc_bof::ClientError::from)?;
    println!(
        "nadc hotlist create serious-crime --fuzzy; nadc hotlist add serious-crime {target} --action notify --convoy --expires 7d"
    );
    println!("nadc alerts watch (alice, from position 0): subscribed");
    Ok(())
}

fn print_alerts(alerts: &[pb::AlertEvent]) {
    let count = |k: pb::AlertKind| alerts.iter().filter(|e| e.kind == k as i32).count();
    println!(
        "{} alerts received: {} hotlist hits, {} convoy alerts, {} cloned-plate alerts",
        alerts.len(),
        count(pb::AlertKind::Hit),
        count(pb::AlertKind::Convoy),
        count(pb::AlertKind::Clone)
    );
    let fuzzy = alerts.iter().find(|e| {
        e.kind == pb::AlertKind::Hit as i32
            && e.r#match
                .as_ref()
                .is_some_and(|m| m.kind != pb::vrm_match::Kind::Exact as i32)
    });
    let exact = alerts.iter().find(|e| e.kind == pb::AlertKind::Hit as i32);
    let convoy = alerts
        .iter()
        .filter(|e| e.kind == pb::AlertKind::Convoy as i32)
        .max_by_key(|e| e.companions.first().map_or(0, |c| c.co_occurrences));
    let clone = alerts
        .iter()
        .find(|e| e.kind == pb::AlertKind::Clone as i32);
    for e in [exact, fuzzy, convoy, clone].into_iter().flatten() {
        println!("\n{}", crate::alerting::alert_text(e));
    }
}

/// A retrospective convoy search for the target and a clone search over
/// the day.
async fn convoy_and_clones(
    ch: &tonic::transport::Channel,
    target: &str,
    day_start: Timestamp,
) -> anyhow::Result<()> {
    let from = Some(nadc_proto::to_pb_time(day_start));
    let to = Some(nadc_proto::to_pb_time(
        day_start.plus_millis(nadc_core::time::MS_PER_DAY - 1),
    ));
    println!("\nnadc search convoy {target} --from DAY --to DAY+1: who travelled with the target");
    let ans = crate::alerting::convoy_search(
        ch.clone(),
        pb::ConvoyRequest {
            access: demo_access(),
            vrms: vec![target.to_string()],
            from,
            to,
            limit: 5,
            ..Default::default()
        },
    )
    .await?;
    for c in &ans.companions {
        println!(
            "  {}. {}  {} co-occurrences at {} camera(s); first pair: {}",
            c.rank,
            c.vrm,
            c.co_occurrences,
            c.cameras,
            c.pairs
                .first()
                .and_then(|p| {
                    let (t, m) = (
                        p.target.as_ref()?.provenance.as_ref()?,
                        p.companion.as_ref()?.provenance.as_ref()?,
                    );
                    Some(format!(
                        "{}/{} gap {:+.0} s (reads {} and {})",
                        t.owning_force,
                        t.camera_id,
                        p.gap_ms as f64 / 1000.0,
                        t.bof_read_id,
                        m.bof_read_id
                    ))
                })
                .unwrap_or_default()
        );
    }
    println!(
        "\nnadc search clones --from DAY --to DAY+1: plates read too far apart for the time between"
    );
    let ans = crate::alerting::clones_search(
        ch.clone(),
        pb::ClonesRequest {
            access: demo_access(),
            from,
            to,
            limit: 5,
            ..Default::default()
        },
    )
    .await?;
    for p in &ans.pairs {
        let side = |r: &Option<pb::ReadRow>| {
            r.as_ref()
                .and_then(|r| r.provenance.as_ref())
                .map(|p| {
                    format!(
                        "{}/{} at {}",
                        p.owning_force,
                        p.camera_id,
                        crate::output::time(&p.observed_at)
                    )
                })
                .unwrap_or_default()
        };
        println!(
            "  {}  {} -> {}: {:.0} km in {:.0} s ({:.0} km/h)",
            p.vrm,
            side(&p.first),
            side(&p.second),
            p.distance_m / 1000.0,
            p.seconds,
            p.speed_kmh
        );
    }
    if let Some(s) = &ans.summary {
        println!(
            "  {} pair(s) in all from {} reads",
            s.total, s.reads_examined
        );
    }
    Ok(())
}
