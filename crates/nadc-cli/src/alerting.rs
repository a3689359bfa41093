//! Hotlists, alerts, convoy and clone commands: `nadc hotlist ...`,
//! `nadc alerts ...`, `nadc search convoy` and `nadc search clones`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use nadc_bof::{ClientError, pb};
use nadc_core::Timestamp;
use nadc_core::alert::{AlertKind, Verification};
use nadc_core::hotlist::Action;
use nadc_proto::hotlists::{action_to_pb, kind_to_pb, outcome_to_pb, verification_to_pb};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::NodeArgs;
use crate::client::{AccessArgs, access_context, channel, parse_time, search_client};
use crate::output::{OutputFormat, print_records, properties, terminal_lines, terminal_text, time};

#[derive(Subcommand, Debug)]
pub enum HotlistCommand {
    /// Create a list owned by your force (hotlist-manager role).
    Create {
        #[command(flatten)]
        node: NodeArgs,
        /// The list's name (A-Z a-z 0-9 - _ .).
        name: String,
        /// Why the list exists, e.g. "serious crime".
        #[arg(long)]
        purpose: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Also match confusable characters (0/O/D/Q, 1/I, 2/Z, 5/S, 8/B, 6/G).
        #[arg(long)]
        fuzzy: bool,
        /// With --fuzzy: also match within this many edits (0 or 1).
        #[arg(long, default_value_t = 0)]
        max_edits: u32,
    },
    /// Delete a list of your force and all its entries.
    Delete {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
    },
    /// Add (or replace) one entry.
    Add {
        #[command(flatten)]
        node: NodeArgs,
        /// The list.
        name: String,
        /// The VRM.
        vrm: String,
        /// Why the vehicle is of interest.
        #[arg(long)]
        reason: String,
        /// The intelligence reference supporting the marker.
        #[arg(long)]
        intel_ref: String,
        /// arrest, stop, notify or intelligence.
        #[arg(long)]
        action: Action,
        /// When the entry stops matching: RFC 3339, or from now as 30d / 12h.
        #[arg(long)]
        expires: String,
        /// Run real-time convoy analysis when this entry is hit.
        #[arg(long)]
        convoy: bool,
        /// Also log the reads of the last N days that the entry would have
        /// hit, as retrospective hits (at most the standard data-age tier).
        /// A search of stored reads: it needs a searching role too, and a
        /// purpose and case (--purpose, --case), under which they are
        /// registered.
        #[arg(long, default_value_t = 0)]
        look_back_days: u32,
        #[command(flatten)]
        access: crate::client::AccessArgs,
    },
    /// Remove entries by VRM.
    Remove {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
        #[arg(required = true)]
        vrms: Vec<String>,
    },
    /// Import entries from a CSV file with the header
    /// vrm,reason,intel_ref,action,expires[,convoy]. Each row is checked on
    /// its own; errors name the line.
    Import {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
        file: PathBuf,
        /// Entries per request.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
    },
    /// Every list, with its entry counts.
    List {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Set a list's trigger rules: with any, a read hits only inside the
    /// area of one of them, in its period and daily hours ("alert when a
    /// vehicle on this list enters this area between these hours").
    Rules(crate::trigger::RulesArgs),
    /// One list's entries.
    Show {
        #[command(flatten)]
        node: NodeArgs,
        /// The list, as NAME (your force's) or OWNER/NAME.
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Print alerts as they are raised (and, with --after, those since a
    /// position). Each alert shows its position: pass it to --after to resume.
    Watch {
        #[command(flatten)]
        node: NodeArgs,
        /// Resume after this position (0: from the start of the log).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Only this list (NAME or OWNER/NAME); repeat for more.
        #[arg(long = "list")]
        lists: Vec<String>,
        /// Only alerts on reads of, or lists of, this force; repeat for more.
        #[arg(long = "force")]
        forces: Vec<String>,
        /// Only this action (arrest, stop, notify, intelligence); repeat.
        #[arg(long = "action")]
        actions: Vec<Action>,
        /// Only this kind (hit, convoy, clone); repeat.
        #[arg(long = "kind")]
        kinds: Vec<AlertKind>,
        /// Print what is logged and stop instead of following.
        #[arg(long)]
        history: bool,
        /// Only alerts raised from now on (ignores --after).
        #[arg(long, conflicts_with = "history")]
        from_now: bool,
        /// Purpose and case: needed to replay alerts raised before the
        /// node's live period (history is disclosed like a search); --local
        /// for this node's alerts only.
        #[command(flatten)]
        access: AccessArgs,
        /// Stop after this many alerts.
        #[arg(long)]
        count: Option<usize>,
        /// table (a block per alert) or ndjson.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Record whether the plate image confirms an alert.
    Verify {
        #[command(flatten)]
        node: NodeArgs,
        /// The alert's position.
        position: u64,
        /// confirmed, rejected (a misread) or unverified.
        #[arg(long)]
        state: Verification,
        /// What the image shows.
        #[arg(long, default_value = "")]
        note: String,
        /// With confirmed: what came of it (stopped, arrested, no-action,
        /// not-located), counted by results analysis.
        #[arg(long)]
        outcome: Option<nadc_core::alert::HitOutcome>,
    },
}

/// `nadc search convoy`.
#[derive(Args, Debug)]
pub struct ConvoyArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// Target VRMs.
    vrms: Vec<String>,
    /// Also every active entry of this list (NAME or OWNER/NAME).
    #[arg(long)]
    hotlist: Option<String>,
    /// Window start on the targets' reads, RFC 3339 (default: 24 hours ago).
    #[arg(long)]
    from: Option<String>,
    /// Window end, RFC 3339 (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Seconds either side of a target read at the same camera.
    #[arg(long, default_value_t = 120)]
    window: u32,
    /// Least co-occurrences to list a companion.
    #[arg(long, default_value_t = 2)]
    min_count: u32,
    /// Least distinct cameras.
    #[arg(long, default_value_t = 1)]
    min_cameras: u32,
    /// Most companions.
    #[arg(long, default_value_t = 0)]
    limit: u32,
    /// Lift the node's cap on window length.
    #[arg(long)]
    allow_broad: bool,
    /// Also print each companion's supporting read pairs.
    #[arg(long)]
    pairs: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// `nadc search clones`.
#[derive(Args, Debug)]
pub struct ClonesArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// Window start, RFC 3339.
    #[arg(long)]
    from: String,
    /// Window end, RFC 3339.
    #[arg(long)]
    to: String,
    /// Flag pairs implying more than this speed, km/h.
    #[arg(long, default_value_t = 250.0)]
    max_speed: f64,
    /// Never flag reads closer than this, metres.
    #[arg(long, default_value_t = 2000.0)]
    min_distance: f64,
    /// Only this VRM.
    #[arg(long)]
    vrm: Option<String>,
    /// Most pairs (default: the node's).
    #[arg(long, default_value_t = 0)]
    limit: u32,
    /// Lift the node's cap on window length.
    #[arg(long)]
    allow_broad: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// A list reference from `NAME` or `OWNER/NAME`.
pub fn list_ref(s: &str) -> pb::HotlistRef {
    match s.split_once('/') {
        Some((owner, name)) => pb::HotlistRef {
            owner: owner.to_string(),
            name: name.to_string(),
        },
        None => pb::HotlistRef {
            owner: String::new(),
            name: s.to_string(),
        },
    }
}

/// An expiry from RFC 3339 or a span from now (`30d`, `12h`, `90m`).
pub fn parse_expiry(s: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    let s = s.trim();
    let span = |n: &str, unit_ms: i64| -> anyhow::Result<Timestamp> {
        let n: i64 = n
            .parse()
            .with_context(|| format!("expiry {s:?}: not a number of units"))?;
        Ok(now.plus_millis(n.saturating_mul(unit_ms)))
    };
    if let Some(n) = s.strip_suffix('d') {
        span(n, 86_400_000)
    } else if let Some(n) = s.strip_suffix('h') {
        span(n, 3_600_000)
    } else if let Some(n) = s.strip_suffix('m') {
        span(n, 60_000)
    } else {
        Timestamp::parse_rfc3339(s)
            .with_context(|| format!("expiry {s:?}: give RFC 3339 or a span like 30d, 12h"))
    }
}

fn hotlists_client(ch: Channel) -> pb::hotlists_client::HotlistsClient<Channel> {
    pb::hotlists_client::HotlistsClient::new(ch).max_decoding_message_size(64 << 20)
}

fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>, what: &str) -> anyhow::Result<T> {
    Ok(r.map_err(ClientError::from)
        .with_context(|| what.to_string())?
        .into_inner())
}

fn print_rejections(rejected: &[pb::EntryRejection], line_of: impl Fn(u32) -> String) {
    for r in rejected {
        eprintln!(
            "  {}: {} {}: {}",
            line_of(r.index),
            if r.vrm.is_empty() {
                "-".into()
            } else {
                terminal_text(&r.vrm)
            },
            r.field,
            terminal_text(&r.message)
        );
    }
}

fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}

/// One CSV row of a hotlist import.
#[derive(Debug, serde::Deserialize)]
struct ImportRow {
    vrm: String,
    reason: String,
    intel_ref: String,
    action: String,
    expires: String,
    #[serde(default)]
    convoy: Option<String>,
}

fn import_entry(row: ImportRow, now: Timestamp) -> anyhow::Result<pb::HotlistEntry> {
    let action: Action = row.action.parse()?;
    let expires = parse_expiry(&row.expires, now)?;
    let convoy = match row.convoy.as_deref().map(str::trim) {
        None | Some("") => false,
        Some(v) => matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "y"),
    };
    Ok(pb::HotlistEntry {
        vrm: row.vrm,
        reason: row.reason,
        intel_ref: row.intel_ref,
        action: action_to_pb(action) as i32,
        convoy,
        expires_at: Some(nadc_proto::to_pb_time(expires)),
        ..Default::default()
    })
}

pub async fn hotlist(cmd: HotlistCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HotlistCommand::Create {
            node,
            name,
            purpose,
            description,
            fuzzy,
            max_edits,
        } => {
            let req = pb::CreateHotlistRequest {
                name,
                purpose,
                description,
                fuzzy,
                max_edits,
                rules: Vec::new(),
            };
            let info = rpc(
                hotlists_client(channel(&node).await?)
                    .create_hotlist(req)
                    .await,
                "create hotlist",
            )?;
            let r = info.list.unwrap_or_default();
            println!(
                "created list {}/{} ({})",
                r.owner,
                r.name,
                match (info.fuzzy, info.max_edits) {
                    (false, _) => "exact matching".to_string(),
                    (true, 0) => "exact and confusable matching".to_string(),
                    (true, n) => format!("exact, confusable and {n}-edit matching"),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        HotlistCommand::Delete { node, name } => {
            let r = rpc(
                hotlists_client(channel(&node).await?)
                    .delete_hotlist(list_ref(&name))
                    .await,
                "delete hotlist",
            )?;
            println!("deleted list {name} and its {} entries", r.entries_deleted);
            Ok(ExitCode::SUCCESS)
        }
        HotlistCommand::Add {
            node,
            name,
            vrm,
            reason,
            intel_ref,
            action,
            expires,
            convoy,
            look_back_days,
            access,
        } => {
            let entry = pb::HotlistEntry {
                vrm,
                reason,
                intel_ref,
                action: action_to_pb(action) as i32,
                convoy,
                expires_at: Some(nadc_proto::to_pb_time(parse_expiry(&expires, now())?)),
                ..Default::default()
            };
            let req = pb::AddEntriesRequest {
                list: Some(list_ref(&name)),
                entries: vec![entry],
                look_back_days,
                access: if look_back_days > 0 {
                    Some(crate::client::access_context(&node, &access)?)
                } else {
                    None
                },
            };
            let r = rpc(
                hotlists_client(channel(&node).await?)
                    .add_entries(req)
                    .await,
                "add hotlist entry",
            )?;
            if !r.rejected.is_empty() {
                eprintln!("entry refused:");
                print_rejections(&r.rejected, |_| "entry".into());
                return Ok(ExitCode::FAILURE);
            }
            println!("added to {name}");
            if look_back_days > 0 {
                println!(
                    "{} retrospective hit(s) in the last {look_back_days} days{}{}",
                    r.retrospective_hits,
                    if r.retrospective_hits > 0 {
                        format!(
                            ", logged at positions {}..={} (nadc alerts watch --after {})",
                            r.first_position,
                            r.last_position,
                            r.first_position - 1
                        )
                    } else {
                        String::new()
                    },
                    if r.retrospective_truncated {
                        " (truncated: the newest were logged)"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        HotlistCommand::Remove { node, name, vrms } => {
            let req = pb::RemoveEntriesRequest {
                list: Some(list_ref(&name)),
                vrms,
            };
            let r = rpc(
                hotlists_client(channel(&node).await?)
                    .remove_entries(req)
                    .await,
                "remove hotlist entries",
            )?;
            println!("removed {} entries from {name}", r.removed);
            for v in &r.not_found {
                eprintln!("  not on the list: {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        HotlistCommand::Import {
            node,
            name,
            file,
            batch_size,
        } => import(&node, &name, &file, batch_size.max(1)).await,
        HotlistCommand::List { node, format } => {
            let r = rpc(
                hotlists_client(channel(&node).await?)
                    .list_hotlists(pb::ListHotlistsRequest {})
                    .await,
                "list hotlists",
            )?;
            let records: Vec<Vec<String>> = r
                .lists
                .iter()
                .map(|l| {
                    let id = l.list.clone().unwrap_or_default();
                    vec![
                        format!("{}/{}", id.owner, id.name),
                        l.purpose.clone(),
                        match (l.fuzzy, l.max_edits) {
                            (false, _) => "exact".into(),
                            (true, 0) => "confusable".into(),
                            (true, n) => format!("confusable+{n} edit"),
                        },
                        l.entries.to_string(),
                        l.active_entries.to_string(),
                        l.created_by.clone(),
                        time(&l.created_at),
                    ]
                })
                .collect();
            print_records(
                &mut std::io::stdout().lock(),
                format,
                "hotlists",
                &[
                    "list",
                    "purpose",
                    "matching",
                    "entries",
                    "active",
                    "created_by",
                    "created_at",
                ],
                &records,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        HotlistCommand::Rules(a) => crate::trigger::run(a).await,
        HotlistCommand::Show { node, name, format } => {
            let r = rpc(
                hotlists_client(channel(&node).await?)
                    .get_hotlist(list_ref(&name))
                    .await,
                "show hotlist",
            )?;
            let records: Vec<Vec<String>> = r
                .entries
                .iter()
                .map(|e| {
                    vec![
                        e.vrm.clone(),
                        action_name(e.action),
                        e.reason.clone(),
                        e.intel_ref.clone(),
                        time(&e.expires_at),
                        e.convoy.to_string(),
                        e.created_by.clone(),
                        time(&e.created_at),
                    ]
                })
                .collect();
            print_records(
                &mut std::io::stdout().lock(),
                format,
                "hotlist entries",
                &[
                    "vrm",
                    "action",
                    "reason",
                    "intel_ref",
                    "expires",
                    "convoy",
                    "created_by",
                    "created_at",
                ],
                &records,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn action_name(a: i32) -> String {
    nadc_proto::hotlists::action_from_pb(a)
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| "-".into())
}

async fn import(
    node: &NodeArgs,
    name: &str,
    file: &PathBuf,
    batch_size: usize,
) -> anyhow::Result<ExitCode> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("open {}", file.display()))?;
    let now = now();
    // Each good row with its line number; bad rows reported by line.
    let mut rows: Vec<(u64, pb::HotlistEntry)> = Vec::new();
    let mut malformed = 0usize;
    for rec in reader.deserialize::<ImportRow>() {
        match rec {
            Ok(row) => {
                let line = rows.len() as u64 + malformed as u64 + 2;
                match import_entry(row, now) {
                    Ok(e) => rows.push((line, e)),
                    Err(e) => {
                        malformed += 1;
                        eprintln!("  line {line}: {e:#}");
                    }
                }
            }
            Err(e) => {
                malformed += 1;
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                eprintln!("  line {line}: {e}");
            }
        }
    }
    let mut client = hotlists_client(channel(node).await?);
    let (mut stored, mut rejected) = (0u64, 0u64);
    for chunk in rows.chunks(batch_size) {
        let req = pb::AddEntriesRequest {
            list: Some(list_ref(name)),
            entries: chunk.iter().map(|(_, e)| e.clone()).collect(),
            look_back_days: 0,
            access: None,
        };
        let r = rpc(client.add_entries(req).await, "import hotlist entries")?;
        stored += u64::from(r.stored);
        rejected += r.rejected.len() as u64;
        print_rejections(&r.rejected, |i| {
            format!("line {}", chunk.get(i as usize).map_or(0, |(l, _)| *l))
        });
    }
    println!(
        "{stored} entries stored in {name}; {rejected} refused by the node; {malformed} malformed rows"
    );
    Ok(if rejected + malformed as u64 == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An alert as a JSON object (NDJSON output).
pub fn alert_json(e: &pb::AlertEvent) -> Value {
    if let Some(p) = &e.peer {
        return json!({"peer": {"node": p.node, "reachable": p.reachable,
            "error": p.error, "retry_in_ms": p.retry_in_ms}});
    }
    let kind = pb::AlertKind::try_from(e.kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("ALERT_KIND_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let v = e.verification.clone().unwrap_or_default();
    let mut o = json!({
        "position": e.position,
        "kind": kind,
        "raised_at": time(&e.raised_at),
        "node": e.node,
        "read": e.read.as_ref().map(|r| Value::Object(properties(r))),
        "verification": {
            "state": pb::Verification::try_from(v.state)
                .map(|s| s.as_str_name().trim_start_matches("VERIFICATION_").to_lowercase())
                .unwrap_or_default(),
            "by": v.by,
            "by_force": v.by_force,
            "at": time(&v.at),
            "note": v.note,
        },
    });
    if e.retrospective {
        o["retrospective"] = json!(true);
    }
    if let Some(l) = &e.list {
        o["list"] = json!(format!("{}/{}", l.owner, l.name));
        o["purpose"] = json!(e.purpose);
    }
    if let Some(en) = &e.entry {
        o["list_vrm"] = json!(en.vrm);
        o["action"] = json!(action_name(en.action));
        o["reason"] = json!(en.reason);
        o["intel_ref"] = json!(en.intel_ref);
        o["expires"] = json!(time(&en.expires_at));
    }
    if let Some(m) = &e.r#match {
        o["match"] = json!(m.label);
        o["substitutions"] = json!(e.substitutions);
    }
    if !e.companions.is_empty() {
        o["look_back_s"] = json!(e.look_back_s);
        o["companions"] = e
            .companions
            .iter()
            .map(
                |c| json!({"vrm": c.vrm, "co_occurrences": c.co_occurrences, "cameras": c.cameras}),
            )
            .collect();
    }
    if let Some(other) = &e.other_read {
        o["other_read"] = Value::Object(properties(other));
        o["distance_m"] = json!(e.distance_m);
        o["seconds"] = json!(e.seconds);
        o["speed_kmh"] = json!(if e.speed_kmh.is_finite() {
            json!(e.speed_kmh)
        } else {
            json!("infinite")
        });
    }
    o
}

fn read_line(r: &pb::ReadRow) -> String {
    let p = r.provenance.clone().unwrap_or_default();
    let images: Vec<String> = [
        ("patch", &r.patch_image_ref),
        ("overview", &r.overview_image_ref),
    ]
    .iter()
    .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n} {v}")))
    .collect();
    format!(
        "{} (as read \"{}\") at {}/{} {:.5},{:.5} {}{}",
        r.vrm,
        r.vrm_raw,
        p.owning_force,
        p.camera_id,
        r.lat,
        r.lon,
        time(&p.observed_at),
        if images.is_empty() {
            String::new()
        } else {
            format!("; images: {}", images.join(", "))
        }
    )
}

/// An alert as a block of lines for a terminal.
pub fn alert_text(e: &pb::AlertEvent) -> String {
    if let Some(p) = &e.peer {
        return if p.reachable {
            format!("peer {} is back: its alerts follow", p.node)
        } else {
            format!(
                "peer {} lost ({}): retrying in {} ms; its alerts are delayed, not lost",
                p.node, p.error, p.retry_in_ms
            )
        };
    }
    let j = alert_json(e);
    let s = |k: &str| j[k].as_str().unwrap_or_default().to_string();
    let mut out = format!(
        "#{} {}{} raised {} on {}",
        e.position,
        s("kind").to_uppercase(),
        if e.retrospective {
            format!(
                " RETROSPECTIVE (the read is from {}, before the entry was listed)",
                e.read
                    .as_ref()
                    .and_then(|r| r.provenance.as_ref())
                    .map(|p| time(&p.observed_at))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        },
        s("raised_at"),
        e.node
    );
    if e.list.is_some() {
        out.push_str(&format!(
            "  list {} ({})  action {}",
            s("list"),
            e.purpose,
            s("action").to_uppercase()
        ));
    }
    if let Some(r) = &e.read {
        out.push_str(&format!("\n  read:  {}", read_line(r)));
    }
    if let Some(en) = &e.entry {
        if let Some(m) = &e.r#match {
            let how = if e.substitutions.is_empty() {
                m.label.clone()
            } else {
                format!("{} ({})", m.label, e.substitutions)
            };
            out.push_str(&format!(
                "\n  listed: {}  matched {}  reason: {}  intel: {}  expires {}",
                en.vrm,
                how,
                en.reason,
                en.intel_ref,
                time(&en.expires_at)
            ));
        } else {
            out.push_str(&format!("\n  target: {}", en.vrm));
        }
    }
    if !e.companions.is_empty() {
        out.push_str(&format!("\n  companions in the last {} s:", e.look_back_s));
        for c in &e.companions {
            out.push_str(&format!(
                "\n    {}  {} co-occurrences at {} camera(s)",
                c.vrm, c.co_occurrences, c.cameras
            ));
        }
    }
    if let Some(other) = &e.other_read {
        out.push_str(&format!(
            "\n  other: {}\n  {:.1} km apart in {:.0} s: {} km/h",
            read_line(other),
            e.distance_m / 1000.0,
            e.seconds,
            if e.speed_kmh.is_finite() {
                format!("{:.0}", e.speed_kmh)
            } else {
                "infinite".into()
            }
        ));
    }
    let v = &j["verification"];
    out.push_str(&format!(
        "\n  verification: {}",
        v["state"].as_str().unwrap_or_default()
    ));
    if let Some(by) = v["by"].as_str().filter(|b| !b.is_empty()) {
        out.push_str(&format!(
            " by {by} ({}) at {}: {}",
            v["by_force"].as_str().unwrap_or_default(),
            v["at"].as_str().unwrap_or_default(),
            v["note"].as_str().unwrap_or_default()
        ));
    } else {
        out.push_str(" (a hit is not an identification: compare the plate image with the listed VRM before acting)");
    }
    out
}

fn alerts_client(ch: Channel) -> pb::alerts_client::AlertsClient<Channel> {
    pb::alerts_client::AlertsClient::new(ch).max_decoding_message_size(64 << 20)
}

pub async fn alerts(cmd: AlertsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AlertsCommand::Watch {
            node,
            after,
            lists,
            forces,
            actions,
            kinds,
            history,
            from_now,
            access,
            count,
            format,
        } => {
            if !matches!(format, OutputFormat::Table | OutputFormat::Ndjson) {
                anyhow::bail!("alerts print as --format table or ndjson");
            }
            let req = pb::WatchRequest {
                after,
                lists: lists.iter().map(|l| list_ref(l)).collect(),
                forces,
                actions: actions.iter().map(|a| action_to_pb(*a) as i32).collect(),
                kinds: kinds.iter().map(|k| kind_to_pb(*k) as i32).collect(),
                history_only: history,
                from_now,
                scope: access.scope(),
                on_behalf_of: None,
                access: Some(access_context(&node, &access)?),
                raised_since: None,
            };
            let mut stream = rpc(
                alerts_client(channel(&node).await?).watch(req).await,
                "watch alerts",
            )?;
            let mut seen = 0usize;
            let out = &mut std::io::stdout();
            while let Some(e) = stream.next().await {
                let e = e.map_err(ClientError::from).context("watch alerts")?;
                match format {
                    OutputFormat::Ndjson => writeln!(out, "{}", alert_json(&e))?,
                    _ => writeln!(out, "{}\n", terminal_lines(&alert_text(&e)))?,
                }
                out.flush()?;
                // A notice about a peer is not an alert.
                seen += usize::from(e.peer.is_none());
                if count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Verify {
            node,
            position,
            state,
            note,
            outcome,
        } => {
            let req = pb::VerifyRequest {
                position,
                state: verification_to_pb(state) as i32,
                note,
                outcome: outcome.map_or(pb::HitOutcome::Unspecified, outcome_to_pb) as i32,
            };
            let e = rpc(
                alerts_client(channel(&node).await?).verify(req).await,
                "verify alert",
            )?;
            println!("{}", terminal_lines(&alert_text(&e)));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Hands every chunk of a streamed answer to `take`, naming the search in
/// an error.
async fn drain<C>(
    mut stream: tonic::Streaming<C>,
    what: &'static str,
    mut take: impl FnMut(C),
) -> anyhow::Result<()> {
    while let Some(c) = stream.next().await {
        take(c.map_err(ClientError::from).context(what)?);
    }
    Ok(())
}

/// A collected convoy answer.
#[derive(Debug, Default)]
pub struct ConvoyAnswer {
    /// Companions, ranked.
    pub companions: Vec<pb::Companion>,
    /// The summary.
    pub summary: Option<pb::ConvoySummary>,
}

/// Runs a convoy search and collects it.
pub async fn convoy_search(ch: Channel, req: pb::ConvoyRequest) -> anyhow::Result<ConvoyAnswer> {
    let stream = rpc(search_client(ch).convoy(req).await, "search convoy")?;
    let mut out = ConvoyAnswer::default();
    drain(stream, "search convoy", |c| match c.chunk {
        Some(pb::convoy_chunk::Chunk::Companion(c)) => out.companions.push(c),
        Some(pb::convoy_chunk::Chunk::Summary(s)) => out.summary = Some(s),
        None => {}
    })
    .await?;
    Ok(out)
}

fn forces_text(forces: &[pb::ForceCount]) -> String {
    if forces.is_empty() {
        return "none".into();
    }
    forces
        .iter()
        .map(|f| format!("{} {}", f.force, f.rows))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pair_json(p: &pb::ConvoyPair) -> Value {
    json!({
        "gap_s": p.gap_ms as f64 / 1000.0,
        "target": p.target.as_ref().map(|r| Value::Object(properties(r))),
        "companion": p.companion.as_ref().map(|r| Value::Object(properties(r))),
    })
}

pub async fn convoy(a: ConvoyArgs) -> anyhow::Result<ExitCode> {
    let req = pb::ConvoyRequest {
        access: Some(access_context(&a.node, &a.access)?),
        scope: a.access.scope(),
        on_behalf_of: None,
        vrms: a.vrms,
        hotlist: a.hotlist.as_deref().map(list_ref),
        from: parse_time(&a.from, "from")?,
        to: parse_time(&a.to, "to")?,
        window_s: a.window,
        min_count: a.min_count,
        min_cameras: a.min_cameras,
        limit: a.limit,
        allow_broad: a.allow_broad,
    };
    let ans = convoy_search(channel(&a.node).await?, req).await?;
    let out = &mut std::io::stdout().lock();
    let header = [
        "rank",
        "vrm",
        "co_occurrences",
        "cameras",
        "targets",
        "first_together",
        "last_together",
        "owning_forces",
    ];
    let companion_cells = |c: &pb::Companion| -> Vec<String> {
        let t = |p: Option<&pb::ConvoyPair>| {
            p.and_then(|p| p.target.as_ref())
                .and_then(|r| r.provenance.as_ref())
                .map(|p| time(&p.observed_at))
                .unwrap_or_default()
        };
        let mut forces: Vec<String> = c
            .pairs
            .iter()
            .filter_map(|p| p.companion.as_ref()?.provenance.as_ref())
            .map(|p| p.owning_force.clone())
            .collect();
        forces.sort();
        forces.dedup();
        vec![
            c.rank.to_string(),
            c.vrm.clone(),
            c.co_occurrences.to_string(),
            c.cameras.to_string(),
            c.targets.join("|"),
            t(c.pairs.first()),
            t(c.pairs.last()),
            forces.join("|"),
        ]
    };
    match a.format {
        OutputFormat::Ndjson => {
            for c in &ans.companions {
                let mut o = serde_json::Map::new();
                for (k, v) in header.iter().zip(companion_cells(c)) {
                    o.insert(k.to_string(), Value::String(v));
                }
                o.insert(
                    "pairs".into(),
                    c.pairs.iter().map(pair_json).collect::<Vec<_>>().into(),
                );
                writeln!(out, "{}", Value::Object(o))?;
            }
        }
        OutputFormat::Csv if a.pairs => {
            let mut w = crate::output::SpreadsheetCsv::new(&mut *out);
            w.row(header.iter().copied().chain([
                "camera",
                "target_vrm",
                "target_at",
                "companion_at",
                "gap_s",
                "target_force",
                "target_bof_read_id",
                "companion_force",
                "companion_bof_read_id",
            ]))?;
            for c in &ans.companions {
                for p in &c.pairs {
                    let (t, m) = (
                        p.target.clone().unwrap_or_default(),
                        p.companion.clone().unwrap_or_default(),
                    );
                    let (tp, mp) = (
                        t.provenance.clone().unwrap_or_default(),
                        m.provenance.clone().unwrap_or_default(),
                    );
                    let mut rec = companion_cells(c);
                    rec.extend([
                        format!("{}/{}", tp.owning_force, tp.camera_id),
                        t.vrm.clone(),
                        time(&tp.observed_at),
                        time(&mp.observed_at),
                        format!("{:.1}", p.gap_ms as f64 / 1000.0),
                        tp.owning_force.clone(),
                        tp.bof_read_id.clone(),
                        mp.owning_force.clone(),
                        mp.bof_read_id.clone(),
                    ]);
                    w.row(rec)?;
                }
            }
            w.flush()?;
        }
        format => {
            let records: Vec<Vec<String>> = ans.companions.iter().map(companion_cells).collect();
            if a.pairs && format == OutputFormat::Table {
                for (c, rec) in ans.companions.iter().zip(&records) {
                    print_records(
                        out,
                        format,
                        "companions",
                        &header,
                        std::slice::from_ref(rec),
                    )?;
                    for p in &c.pairs {
                        let (t, m) = (
                            p.target.clone().unwrap_or_default(),
                            p.companion.clone().unwrap_or_default(),
                        );
                        let (tp, mp) = (
                            t.provenance.clone().unwrap_or_default(),
                            m.provenance.clone().unwrap_or_default(),
                        );
                        writeln!(
                            out,
                            "    at {}/{}: target {} {} ({} read {}), companion {} ({} read {}), gap {:+.0} s",
                            tp.owning_force,
                            tp.camera_id,
                            t.vrm,
                            time(&tp.observed_at),
                            tp.owning_force,
                            tp.bof_read_id,
                            time(&mp.observed_at),
                            mp.owning_force,
                            mp.bof_read_id,
                            p.gap_ms as f64 / 1000.0
                        )?;
                    }
                    writeln!(out)?;
                }
            } else {
                print_records(out, format, "companions", &header, &records)?;
            }
        }
    }
    if let Some(s) = &ans.summary {
        let text = format!(
            "{} companion(s){} of {} target(s) over {} target read(s); {} camera index entries examined; owning forces: {}; {:.1} ms on the node",
            s.companions,
            if s.truncated {
                format!(" (of {}; cut at the limit)", s.total_companions)
            } else {
                String::new()
            },
            s.targets.len(),
            s.target_reads,
            s.entries_examined,
            forces_text(&s.forces),
            s.elapsed_us as f64 / 1000.0
        ) + &crate::output::stale_text(&s.stale)
            + &crate::output::nodes_text(&s.nodes, s.partial);
        if a.format == OutputFormat::Table {
            writeln!(out, "{text}")?;
        } else {
            eprintln!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A collected clone answer.
#[derive(Debug, Default)]
pub struct ClonesAnswer {
    /// Flagged pairs.
    pub pairs: Vec<pb::ClonePair>,
    /// The summary.
    pub summary: Option<pb::ClonesSummary>,
}

/// Runs a clone search and collects it.
pub async fn clones_search(ch: Channel, req: pb::ClonesRequest) -> anyhow::Result<ClonesAnswer> {
    let stream = rpc(search_client(ch).clones(req).await, "search clones")?;
    let mut out = ClonesAnswer::default();
    drain(stream, "search clones", |c| match c.chunk {
        Some(pb::clones_chunk::Chunk::Pair(p)) => out.pairs.push(p),
        Some(pb::clones_chunk::Chunk::Summary(s)) => out.summary = Some(s),
        None => {}
    })
    .await?;
    Ok(out)
}

pub async fn clones(a: ClonesArgs) -> anyhow::Result<ExitCode> {
    let req = pb::ClonesRequest {
        access: Some(access_context(&a.node, &a.access)?),
        from: parse_time(&Some(a.from), "from")?,
        to: parse_time(&Some(a.to), "to")?,
        max_speed_kmh: a.max_speed,
        min_distance_m: Some(a.min_distance),
        vrm: a.vrm.unwrap_or_default(),
        limit: a.limit,
        allow_broad: a.allow_broad,
    };
    let ans = clones_search(channel(&a.node).await?, req).await?;
    let header = [
        "vrm",
        "first_at",
        "first_force",
        "first_camera",
        "first_lat",
        "first_lon",
        "first_bof_read_id",
        "second_at",
        "second_force",
        "second_camera",
        "second_lat",
        "second_lon",
        "second_bof_read_id",
        "distance_km",
        "seconds",
        "speed_kmh",
    ];
    let side = |r: &Option<pb::ReadRow>| -> Vec<String> {
        let r = r.clone().unwrap_or_default();
        let p = r.provenance.clone().unwrap_or_default();
        vec![
            time(&p.observed_at),
            p.owning_force,
            p.camera_id,
            format!("{:.5}", r.lat),
            format!("{:.5}", r.lon),
            p.bof_read_id,
        ]
    };
    let records: Vec<Vec<String>> = ans
        .pairs
        .iter()
        .map(|p| {
            let mut rec = vec![p.vrm.clone()];
            rec.extend(side(&p.first));
            rec.extend(side(&p.second));
            rec.extend([
                format!("{:.2}", p.distance_m / 1000.0),
                format!("{:.0}", p.seconds),
                if p.speed_kmh.is_finite() {
                    format!("{:.0}", p.speed_kmh)
                } else {
                    "infinite".into()
                },
            ]);
            rec
        })
        .collect();
    let out = &mut std::io::stdout().lock();
    print_records(out, a.format, "clone pairs", &header, &records)?;
    if let Some(s) = &ans.summary {
        let text = format!(
            "{} pair(s){} from {} reads examined; owning forces: {}; {:.1} ms on the node",
            s.pairs,
            if s.truncated {
                format!(" (of {}; cut at the limit)", s.total)
            } else {
                String::new()
            },
            s.reads_examined,
            forces_text(&s.forces),
            s.elapsed_us as f64 / 1000.0
        ) + &crate::output::stale_text(&s.stale);
        if a.format == OutputFormat::Table {
            writeln!(out, "{text}")?;
        } else {
            eprintln!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_accepts_spans_and_rfc3339() {
        let now = Timestamp::parse_rfc3339("2026-11-24T00:00:00Z").unwrap();
        assert_eq!(
            parse_expiry("30d", now).unwrap(),
            Timestamp::parse_rfc3339("2026-12-24T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_expiry("12h", now).unwrap(),
            Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap()
        );
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00Z", now).unwrap(),
            Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap()
        );
        assert!(parse_expiry("soon", now).is_err());
        assert!(parse_expiry("xd", now).is_err());
    }

    #[test]
    fn list_refs_take_an_optional_owner() {
        assert_eq!(list_ref("AVON/wanted").owner, "AVON");
        assert_eq!(list_ref("wanted").owner, "");
        assert_eq!(list_ref("wanted").name, "wanted");
    }
}
