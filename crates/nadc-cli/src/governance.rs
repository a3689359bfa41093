//! `nadc authorise ...` (supervisors' authorisations for older data) and
//! `nadc audit ...` (verify the hash chain, query who did what).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use futures::StreamExt;
use nadc_bof::{ClientError, pb};
use nadc_core::Timestamp;
use nadc_store::{RocksStore, StoreOptions};

use crate::NodeArgs;
use crate::alerting::parse_expiry;
use crate::client::{AccessArgs, access_context, channel, parse_time, search_client};
use crate::output::{OutputFormat, print_records, time};

#[derive(Subcommand, Debug)]
pub enum AuthoriseCommand {
    /// Record an authorisation to search data older than the standard tier
    /// for one case and purpose (supervisor role; covers your force).
    Grant {
        #[command(flatten)]
        node: NodeArgs,
        /// The id the searcher will quote.
        id: String,
        #[arg(long = "case")]
        case_ref: String,
        /// An extended purpose: serious-crime, major-crime, counter-terrorism.
        #[arg(long)]
        purpose: String,
        /// Only this user of your force (default: any user on the case).
        #[arg(long, default_value = "")]
        user: String,
        /// Start of the capture-time range opened, RFC 3339.
        #[arg(long)]
        data_from: String,
        /// End of that range, RFC 3339 (default: now).
        #[arg(long)]
        data_to: Option<String>,
        /// When it lapses: RFC 3339, or from now as 7d / 12h.
        #[arg(long)]
        expires: String,
        /// Why it is granted.
        #[arg(long)]
        reason: String,
    },
    /// Revoke one of your force's authorisations (supervisor role): from
    /// then on it opens nothing; it stays listed as revoked.
    Revoke {
        #[command(flatten)]
        node: NodeArgs,
        /// The authorisation's id.
        id: String,
        /// Why it is revoked.
        #[arg(long)]
        reason: String,
    },
    /// Authorisations of your force.
    List {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum HoldCommand {
    /// Hold reads for a case beyond retention (disclosure or supervisor
    /// role). The reads are named by a CSV export of a search (`--format
    /// csv`: the seq and observed_at columns are used).
    Place {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long = "case")]
        case_ref: String,
        /// The force whose case it is, for a case another force shared
        /// with yours (default: your own force's case).
        #[arg(long = "case-force", default_value = "")]
        case_force: String,
        /// A search result exported with --format csv.
        #[arg(long)]
        reads: PathBuf,
        /// Why (recorded in the audit).
        #[arg(long)]
        reason: String,
    },
    /// Release every hold of a case.
    Release {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long = "case")]
        case_ref: String,
        /// The force whose case it is, for a case another force shared
        /// with yours (default: your own force's case).
        #[arg(long = "case-force", default_value = "")]
        case_force: String,
    },
    /// The reads held for a case (searched under that case).
    Show {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        access: AccessArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
}

/// Formats of a disclosure schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleFormat {
    /// Grouped by owning agency, for a terminal.
    Table,
    /// One row per read, with its agency's consultation status.
    Csv,
    /// The whole schedule as one JSON document.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum DisclosureCommand {
    /// The disclosure schedule of a case: its reads grouped by owning
    /// agency, material first, with each agency's consultation status and
    /// the searches that produced them.
    Schedule {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long = "case")]
        case_ref: String,
        /// The force whose case it is, for a case another force shared
        /// with yours (default: your own force's case).
        #[arg(long = "case-force", default_value = "")]
        case_force: String,
        #[arg(long, value_enum, default_value = "table")]
        format: ScheduleFormat,
    },
    /// Mark reads (a search result exported with --format csv: node, seq,
    /// observed_at columns) as material used in a case.
    Mark {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long = "case")]
        case_ref: String,
        /// The force whose case it is, for a case another force shared
        /// with yours (default: your own force's case).
        #[arg(long = "case-force", default_value = "")]
        case_force: String,
        #[arg(long)]
        reads: PathBuf,
        /// Unmark instead.
        #[arg(long)]
        unmark: bool,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Share one of your force's cases with another force (supervisor or
    /// disclosure role): its users may then search under it
    /// (`--case REF --case-force YOURS`) and see its schedule, material,
    /// consultations and held reads.
    Share {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long = "case")]
        case_ref: String,
        /// The force it is shared with.
        #[arg(long)]
        force: String,
        /// End the share instead: the force sees nothing more of the case.
        #[arg(long)]
        revoke: bool,
    },
    /// Record an owning agency's consultation status for a case
    /// (disclosure role).
    Consult {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long = "case")]
        case_ref: String,
        /// The force whose case it is, for a case another force shared
        /// with yours (default: your own force's case).
        #[arg(long = "case-force", default_value = "")]
        case_force: String,
        /// The owning agency.
        #[arg(long)]
        force: String,
        /// pending, consulted, approved or refused.
        #[arg(long)]
        status: String,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the audit hash chain and report the first broken link (auditor
    /// role); or, with --data, check a stopped node's store directly.
    Verify {
        #[command(flatten)]
        node: NodeArgs,
        /// A stopped node's data directory, checked without a node.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Who did what: audit entries matching the filters, oldest first
    /// (auditor role).
    Query {
        #[command(flatten)]
        node: NodeArgs,
        /// Only this user.
        #[arg(long, default_value = "")]
        user: String,
        /// Only users of this force (agency).
        #[arg(long, default_value = "")]
        force: String,
        /// Only this case reference.
        #[arg(long = "case", default_value = "")]
        case_ref: String,
        /// Only actions starting with this, e.g. `search.`.
        #[arg(long, default_value = "")]
        action: String,
        /// Only entries that returned this force's data ("who searched our data").
        #[arg(long, default_value = "")]
        owning_force: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 0)]
        limit: u32,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
}

fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}

fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>, what: &str) -> anyhow::Result<T> {
    Ok(r.map_err(ClientError::from)
        .with_context(|| what.to_string())?
        .into_inner())
}

pub async fn authorise(cmd: AuthoriseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuthoriseCommand::Grant {
            node,
            id,
            case_ref,
            purpose,
            user,
            data_from,
            data_to,
            expires,
            reason,
        } => {
            let req = pb::GrantRequest {
                id,
                case_ref,
                purpose,
                user,
                data_from: parse_time(&Some(data_from), "data-from")?,
                data_to: Some(match parse_time(&data_to, "data-to")? {
                    Some(t) => t,
                    None => nadc_proto::to_pb_time(now()),
                }),
                expires_at: Some(nadc_proto::to_pb_time(parse_expiry(&expires, now())?)),
                reason,
            };
            let mut c = pb::authorisations_client::AuthorisationsClient::new(channel(&node).await?);
            let a = rpc(c.grant(req).await, "grant authorisation")?;
            println!(
                "authorisation {} granted by {} ({}) for case {} ({}), data {} to {}, until {}",
                a.id,
                a.granted_by,
                a.force,
                a.case_ref,
                a.purpose,
                time(&a.data_from),
                time(&a.data_to),
                time(&a.expires_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthoriseCommand::Revoke { node, id, reason } => {
            let mut c = pb::authorisations_client::AuthorisationsClient::new(channel(&node).await?);
            let a = rpc(
                c.revoke(pb::RevokeRequest { id, reason }).await,
                "revoke authorisation",
            )?;
            println!(
                "authorisation {} ({}) revoked by {} at {}: {}",
                a.id,
                a.force,
                a.revoked_by,
                time(&a.revoked_at),
                a.revoke_reason
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthoriseCommand::List { node, format } => {
            let mut c = pb::authorisations_client::AuthorisationsClient::new(channel(&node).await?);
            let r = rpc(
                c.list_authorisations(pb::ListAuthorisationsRequest {})
                    .await,
                "list authorisations",
            )?;
            let records: Vec<Vec<String>> = r
                .authorisations
                .iter()
                .map(|a| {
                    vec![
                        a.id.clone(),
                        a.case_ref.clone(),
                        a.purpose.clone(),
                        if a.user.is_empty() {
                            "(any)".into()
                        } else {
                            a.user.clone()
                        },
                        time(&a.data_from),
                        time(&a.data_to),
                        time(&a.expires_at),
                        a.granted_by.clone(),
                        a.reason.clone(),
                        a.revoked_by.clone(),
                        time(&a.revoked_at),
                        a.revoke_reason.clone(),
                    ]
                })
                .collect();
            print_records(
                &mut std::io::stdout().lock(),
                format,
                "authorisations",
                &[
                    "id",
                    "case",
                    "purpose",
                    "user",
                    "data_from",
                    "data_to",
                    "expires",
                    "granted_by",
                    "reason",
                    "revoked_by",
                    "revoked_at",
                    "revoke_reason",
                ],
                &records,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            data: Some(dir),
            node: _,
        } => {
            let store = RocksStore::open(&dir, StoreOptions::default())
                .with_context(|| format!("open the store in {}", dir.display()))?;
            let r = nadc_node::governance::verify_chain(&store)?;
            report(
                r.entries,
                (!r.intact).then_some((r.broken_at, r.reason.as_str())),
                &r.head,
            )
        }
        AuditCommand::Verify { node, data: None } => {
            let mut c = pb::audit_client::AuditClient::new(channel(&node).await?);
            let r = rpc(
                c.verify(pb::VerifyAuditRequest {}).await,
                "verify the audit log",
            )?;
            report(
                r.entries,
                (!r.intact).then_some((r.broken_at, r.reason.as_str())),
                &r.head,
            )
        }
        AuditCommand::Query {
            node,
            user,
            force,
            case_ref,
            action,
            owning_force,
            from,
            to,
            limit,
            format,
        } => {
            let req = pb::AuditQuery {
                user,
                force,
                case_ref,
                action,
                owning_force,
                from: parse_time(&from, "from")?,
                to: parse_time(&to, "to")?,
                limit,
            };
            let mut c = pb::audit_client::AuditClient::new(channel(&node).await?)
                .max_decoding_message_size(64 << 20);
            let mut stream = rpc(c.query(req).await, "query the audit log")?;
            let mut records = Vec::new();
            while let Some(r) = stream.next().await {
                let r = r
                    .map_err(ClientError::from)
                    .context("query the audit log")?;
                records.push(vec![
                    r.seq.to_string(),
                    time(&r.at),
                    r.user,
                    r.force,
                    r.roles.join("|"),
                    r.action,
                    r.purpose,
                    r.case_ref,
                    r.authorisation,
                    r.returned
                        .iter()
                        .map(|f| format!("{} {}", f.force, f.rows))
                        .collect::<Vec<_>>()
                        .join("|"),
                    r.outcome,
                    r.reason,
                    r.query,
                    r.hash,
                ]);
            }
            print_records(
                &mut std::io::stdout().lock(),
                format,
                "audit entries",
                &[
                    "seq",
                    "at",
                    "user",
                    "force",
                    "roles",
                    "action",
                    "purpose",
                    "case",
                    "authorisation",
                    "returned",
                    "outcome",
                    "reason",
                    "query",
                    "hash",
                ],
                &records,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The (seq, observed_at) of each row of a search exported as CSV.
fn held_reads_from_csv(path: &std::path::Path) -> anyhow::Result<Vec<pb::HeldRead>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("open {}", path.display()))?;
    let header = r.headers()?.clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| {
            format!(
                "{} has no {name} column (export a search with --format csv)",
                path.display()
            )
        })
    };
    let (seq_col, at_col) = (col("seq")?, col("observed_at")?);
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{} line {}", path.display(), i + 2))?;
        let seq: u64 = rec[seq_col]
            .parse()
            .with_context(|| format!("{} line {}: seq", path.display(), i + 2))?;
        let at = Timestamp::parse_rfc3339(&rec[at_col])
            .with_context(|| format!("{} line {}: observed_at", path.display(), i + 2))?;
        out.push(pb::HeldRead {
            seq,
            observed_at: Some(nadc_proto::to_pb_time(at)),
        });
    }
    Ok(out)
}

pub async fn hold(cmd: HoldCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HoldCommand::Place {
            node,
            case_ref,
            case_force,
            reads,
            reason,
        } => {
            let reads = held_reads_from_csv(&reads)?;
            let n = reads.len();
            let mut c = pb::holds_client::HoldsClient::new(channel(&node).await?);
            let r = rpc(
                c.place(pb::PlaceHoldRequest {
                    case_ref: case_ref.clone(),
                    reads,
                    reason,
                    case_force,
                })
                .await,
                "place a legal hold",
            )?;
            println!("{n} reads held for {case_ref} ({} newly)", r.reads);
            Ok(ExitCode::SUCCESS)
        }
        HoldCommand::Release {
            node,
            case_ref,
            case_force,
        } => {
            let mut c = pb::holds_client::HoldsClient::new(channel(&node).await?);
            let r = rpc(
                c.release(pb::ReleaseHoldRequest {
                    case_ref: case_ref.clone(),
                    case_force,
                })
                .await,
                "release a legal hold",
            )?;
            println!("released {} held reads of {case_ref}", r.reads);
            Ok(ExitCode::SUCCESS)
        }
        HoldCommand::Show {
            node,
            access,
            format,
        } => {
            let req = pb::HeldReadsRequest {
                access: Some(access_context(&node, &access)?),
            };
            let stream = rpc(
                search_client(channel(&node).await?).held_reads(req).await,
                "show held reads",
            )?;
            let c = crate::client::collect_stream(stream).await?;
            crate::output::print_rows(
                &mut std::io::stdout().lock(),
                format,
                &c.rows,
                c.summary.as_ref(),
                false,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status_name(s: i32) -> String {
    pb::ConsultationStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CONSULTATION_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

pub async fn disclosure(cmd: DisclosureCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DisclosureCommand::Schedule {
            node,
            case_ref,
            case_force,
            format,
        } => {
            let mut c = pb::disclosure_client::DisclosureClient::new(channel(&node).await?)
                .max_decoding_message_size(64 << 20);
            let s = rpc(
                c.schedule(pb::ScheduleRequest {
                    case_ref,
                    case_force,
                })
                .await,
                "disclosure schedule",
            )?;
            print_schedule(&s, format)?;
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Mark {
            node,
            case_ref,
            case_force,
            reads,
            unmark,
            note,
        } => {
            let path = reads;
            let mut r = csv::Reader::from_path(&path)
                .with_context(|| format!("open {}", path.display()))?;
            let header = r.headers()?.clone();
            let col = |name: &str| {
                header.iter().position(|h| h == name).with_context(|| {
                    format!(
                        "{} has no {name} column (export a search with --format csv)",
                        path.display()
                    )
                })
            };
            let (node_col, seq_col, at_col) = (col("node")?, col("seq")?, col("observed_at")?);
            let mut refs = Vec::new();
            for (i, rec) in r.records().enumerate() {
                let rec = rec.with_context(|| format!("line {}", i + 2))?;
                let at = Timestamp::parse_rfc3339(&rec[at_col])
                    .with_context(|| format!("line {}: observed_at", i + 2))?;
                refs.push(pb::CaseReadRef {
                    node: rec[node_col].to_string(),
                    seq: rec[seq_col]
                        .parse()
                        .with_context(|| format!("line {}: seq", i + 2))?,
                    observed_at: Some(nadc_proto::to_pb_time(at)),
                });
            }
            let mut c = pb::disclosure_client::DisclosureClient::new(channel(&node).await?);
            let out = rpc(
                c.mark_material(pb::MarkMaterialRequest {
                    case_ref: case_ref.clone(),
                    reads: refs,
                    unmark,
                    note,
                    case_force,
                })
                .await,
                "mark material",
            )?;
            println!(
                "{} reads {} for {case_ref}; {} were never returned under this case",
                out.marked,
                if unmark {
                    "unmarked"
                } else {
                    "marked as material"
                },
                out.not_in_case.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Share {
            node,
            case_ref,
            force,
            revoke,
        } => {
            let mut c = pb::disclosure_client::DisclosureClient::new(channel(&node).await?);
            let r = rpc(
                c.share(pb::ShareCaseRequest {
                    case_ref,
                    force,
                    case_force: String::new(),
                    revoke,
                })
                .await,
                if revoke {
                    "end a case's share"
                } else {
                    "share a case"
                },
            )?;
            let members = r
                .members
                .iter()
                .map(|m| format!("{} (by {} at {})", m.force, m.shared_by, time(&m.shared_at)))
                .collect::<Vec<_>>();
            println!(
                "{}/{} is shared with {}",
                r.owner_force,
                r.case_ref,
                if members.is_empty() {
                    "no other force".to_string()
                } else {
                    members.join(", ")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Consult {
            node,
            case_ref,
            case_force,
            force,
            status,
            note,
        } => {
            let status = match status.trim().to_ascii_lowercase().as_str() {
                "pending" => pb::ConsultationStatus::Pending,
                "consulted" => pb::ConsultationStatus::Consulted,
                "approved" => pb::ConsultationStatus::Approved,
                "refused" => pb::ConsultationStatus::Refused,
                other => {
                    anyhow::bail!("--status {other:?}: pending, consulted, approved or refused")
                }
            };
            let mut c = pb::disclosure_client::DisclosureClient::new(channel(&node).await?);
            let info = rpc(
                c.set_consultation(pb::SetConsultationRequest {
                    case_ref: case_ref.clone(),
                    force,
                    status: status as i32,
                    note,
                    case_force,
                })
                .await,
                "record a consultation",
            )?;
            println!(
                "{case_ref}: {} {} (recorded by {})",
                info.force,
                status_name(info.status),
                info.by
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_schedule(s: &pb::ScheduleResponse, format: ScheduleFormat) -> anyhow::Result<()> {
    use std::io::Write;
    let out = &mut std::io::stdout().lock();
    match format {
        ScheduleFormat::Json => {
            let agencies: Vec<serde_json::Value> = s
                .agencies
                .iter()
                .map(|a| {
                    let c = a.consultation.clone().unwrap_or_default();
                    serde_json::json!({
                        "force": a.force,
                        "consultation": {"status": status_name(c.status), "note": c.note,
                            "by": c.by, "at": time(&c.at)},
                        "material": a.material,
                        "reads": a.reads.iter().map(|i| serde_json::json!({
                            "node": i.node, "seq": i.seq, "observed_at": time(&i.observed_at),
                            "bof_read_id": i.bof_read_id, "camera_id": i.camera_id, "vrm": i.vrm,
                            "material": i.material, "marked_by": i.marked_by, "searches": i.searches,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let searches: Vec<serde_json::Value> = s
                .searches
                .iter()
                .map(|x| {
                    serde_json::json!({"audit_seq": x.audit_seq, "at": time(&x.at),
                    "user": x.user, "action": x.action, "purpose": x.purpose})
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "case_ref": s.case_ref, "owner_force": s.owner_force,
                    "members": s.members.iter().map(|m| serde_json::json!({"force": m.force,
                        "shared_by": m.shared_by, "shared_at": time(&m.shared_at)})).collect::<Vec<_>>(),
                    "agencies": agencies, "searches": searches,
                }))?
            )?;
        }
        ScheduleFormat::Csv => {
            let mut w = crate::output::SpreadsheetCsv::new(out);
            w.row([
                "owning_force",
                "consultation",
                "material",
                "marked_by",
                "observed_at",
                "vrm",
                "camera_id",
                "bof_read_id",
                "node",
                "seq",
                "searches",
            ])?;
            for a in &s.agencies {
                let status = status_name(a.consultation.as_ref().map_or(0, |c| c.status));
                for i in &a.reads {
                    w.row([
                        a.force.clone(),
                        status.clone(),
                        i.material.to_string(),
                        i.marked_by.clone(),
                        time(&i.observed_at),
                        i.vrm.clone(),
                        i.camera_id.clone(),
                        i.bof_read_id.clone(),
                        i.node.clone(),
                        i.seq.to_string(),
                        i.searches
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("|"),
                    ])?;
                }
            }
            w.flush()?;
        }
        ScheduleFormat::Table => {
            writeln!(
                out,
                "Disclosure schedule for {}/{}",
                s.owner_force, s.case_ref
            )?;
            if !s.members.is_empty() {
                let members: Vec<String> = s
                    .members
                    .iter()
                    .map(|m| format!("{} (by {} at {})", m.force, m.shared_by, time(&m.shared_at)))
                    .collect();
                writeln!(out, "Shared with {}", members.join(", "))?;
            }
            for a in &s.agencies {
                let c = a.consultation.clone().unwrap_or_default();
                writeln!(
                    out,
                    "\n{}: {} reads, {} material; consultation {}{}",
                    a.force,
                    a.reads.len(),
                    a.material,
                    status_name(c.status).to_uppercase(),
                    if c.by.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (by {} at {}: {})",
                            c.by,
                            time(&c.at),
                            crate::output::terminal_text(&c.note)
                        )
                    }
                )?;
                for i in &a.reads {
                    writeln!(
                        out,
                        "  {} {}  {}  {}/{}  read {}  {}:{}  searches {}",
                        if i.material { "MATERIAL" } else { "unused  " },
                        time(&i.observed_at),
                        i.vrm,
                        a.force,
                        crate::output::terminal_text(&i.camera_id),
                        crate::output::terminal_text(&i.bof_read_id),
                        i.node,
                        i.seq,
                        i.searches
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    )?;
                }
            }
            writeln!(out, "\nSearches under this case:")?;
            for x in &s.searches {
                writeln!(
                    out,
                    "  #{} {} {} {} ({})",
                    x.audit_seq,
                    time(&x.at),
                    x.user,
                    x.action,
                    x.purpose
                )?;
            }
        }
    }
    Ok(())
}

/// `nadc node retention`: a retention pass now (admin role).
pub async fn retention(node: &NodeArgs) -> anyhow::Result<ExitCode> {
    let mut c = pb::admin_client::AdminClient::new(channel(node).await?);
    let r = rpc(
        c.run_retention(pb::RunRetentionRequest {}).await,
        "run retention",
    )?;
    for d in &r.deleted {
        println!("{}  {:<8} {} reads deleted", d.day, d.force, d.deleted);
    }
    println!(
        "{} reads deleted; {} past retention kept under legal holds; {} alerts deleted with their reads",
        r.deleted.iter().map(|d| d.deleted).sum::<u64>(),
        r.held,
        r.alerts_deleted
    );
    Ok(ExitCode::SUCCESS)
}

fn report(entries: u64, broken: Option<(u64, &str)>, head: &str) -> anyhow::Result<ExitCode> {
    match broken {
        None => {
            println!("audit chain intact: {entries} entries; head {head}");
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, reason)) => {
            println!(
                "AUDIT CHAIN BROKEN at entry {seq}: {reason} ({entries} entries before it verified)"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
