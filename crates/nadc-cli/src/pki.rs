//! `nadc pki`: a development PKI.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use nadc_core::ForceId;
use nadc_pki::{InitSpec, parse_user_spec};

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a CA, node certificate(s), one BOF certificate per force and
    /// user certificates (layout and identity scheme: deploy/PKI.md).
    Init {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// Forces to issue BOF certificates for, e.g. AVON,KENT,MET.
        #[arg(long, value_delimiter = ',')]
        forces: Vec<String>,
        /// Users as name:role[+role...]:FORCE, e.g. alice:analyst:AVON.
        #[arg(long, value_delimiter = ',')]
        users: Vec<String>,
        /// Node names to issue node certificates for.
        #[arg(long, value_delimiter = ',', default_value = "node-1")]
        nodes: Vec<String>,
        /// Extra DNS names for node certificates (localhost is always in).
        #[arg(long, value_delimiter = ',')]
        dns: Vec<String>,
        /// Extra IP addresses for node certificates (127.0.0.1 and ::1 are always in).
        #[arg(long, value_delimiter = ',')]
        ip: Vec<IpAddr>,
        /// Replace an existing CA in --out.
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn run(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Init {
            out,
            forces,
            users,
            nodes,
            dns,
            ip,
            overwrite,
        } => {
            let spec = InitSpec {
                node_names: nodes,
                node_dns: dns,
                node_ips: ip,
                forces: forces
                    .iter()
                    .map(|f| ForceId::new(f))
                    .collect::<Result<_, _>>()
                    .context("parse --forces")?,
                users: users
                    .iter()
                    .map(|u| parse_user_spec(u))
                    .collect::<Result<_, _>>()
                    .context("parse --users")?,
            };
            let layout = nadc_pki::init(&out, &spec, overwrite)
                .with_context(|| format!("create PKI in {}", out.display()))?;
            println!("CA:    {}", layout.ca_cert().display());
            for n in &spec.node_names {
                println!(
                    "node:  {} / {}",
                    layout.node_cert(n).display(),
                    layout.node_key(n).display()
                );
            }
            for f in &spec.forces {
                println!(
                    "bof:   {} / {}",
                    layout.bof_cert(f).display(),
                    layout.bof_key(f).display()
                );
            }
            for (name, roles, force) in &spec.users {
                let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "user:  {} / {} ({name} of {force}: {})",
                    layout.user_cert(name).display(),
                    layout.user_key(name).display(),
                    roles.join("+")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
