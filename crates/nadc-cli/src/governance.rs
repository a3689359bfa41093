//! `nadc authorise ...` (supervisors' authorisations for older data) and
//! `nadc audit ...` (verify the hash chain, query who did what).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use futures::StreamExt;
use nadc_bof::{ClientError, pb};
use nadc_core::Timestamp;
use nadc_core::audit::ChainCheck;
use nadc_store::{RocksStore, Store, StoreOptions};

use crate::NodeArgs;
use crate::alerting::parse_expiry;
use crate::client::{channel, parse_time};
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
    /// Authorisations of your force.
    List {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
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
            let mut check = ChainCheck::default();
            let mut broken = None;
            store.audit(1, &mut |e| match check.check(&e) {
                Ok(()) => ControlFlow::Continue(()),
                Err(b) => {
                    broken = Some(b);
                    ControlFlow::Break(())
                }
            })?;
            report(
                check.checked,
                broken.as_ref().map(|b| (b.seq, b.reason.as_str())),
                &nadc_core::audit::hex(&check.head()),
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
