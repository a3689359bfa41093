//! `nadc pki`: a development PKI.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use nadc_core::ForceId;
use nadc_pki::{InitSpec, PkiLayout, Serial, parse_user_spec};

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
    /// Revoke a certificate the development CA issued: record it in
    /// DIR/revoked.txt and write DIR/crl.pem listing every revoked
    /// certificate. Nodes with `crl` set to that file refuse it once they
    /// reload (`kill -HUP` the node, or restart it).
    #[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
    Revoke {
        /// The PKI directory (as made by `nadc pki init`).
        #[arg(long)]
        dir: PathBuf,
        /// A user's certificate, DIR/users/NAME.crt.
        #[arg(long, group = "target")]
        user: Option<String>,
        /// A force's BOF certificate, DIR/bofs/FORCE.crt.
        #[arg(long, group = "target")]
        bof: Option<String>,
        /// A node's certificate, DIR/nodes/NAME.crt.
        #[arg(long, group = "target")]
        node: Option<String>,
        /// Any certificate file issued by the CA.
        #[arg(long, group = "target")]
        cert: Option<PathBuf>,
        /// A serial number in hex (e.g. from `openssl x509 -noout -serial`),
        /// for a certificate whose file is gone.
        #[arg(long, group = "target")]
        serial: Option<String>,
    },
    /// Write a new DIR/crl.pem from DIR/revoked.txt. A CRL says it is
    /// current for 30 days; nodes warn when it is older.
    Crl {
        /// The PKI directory (as made by `nadc pki init`).
        #[arg(long)]
        dir: PathBuf,
    },
}

fn revoke(
    dir: &Path,
    user: Option<String>,
    bof: Option<String>,
    node: Option<String>,
    cert: Option<PathBuf>,
    serial: Option<String>,
) -> anyhow::Result<ExitCode> {
    let layout = PkiLayout::new(dir);
    let done = if let Some(hex) = serial {
        let serial = Serial::parse(&hex)?;
        layout
            .revoke_serial(serial, "(revoked by serial)")
            .with_context(|| format!("revoke serial {hex} in {}", dir.display()))?
    } else {
        let path = match (user, bof, node, cert) {
            (Some(u), ..) => layout.user_cert(&u),
            (_, Some(f), ..) => {
                layout.bof_cert(&ForceId::new(&f).with_context(|| format!("--bof {f}"))?)
            }
            (_, _, Some(n), _) => layout.node_cert(&n),
            (_, _, _, Some(c)) => c,
            _ => bail!("name the certificate to revoke: --user, --bof, --node, --cert or --serial"),
        };
        layout
            .revoke_cert_file(&path)
            .with_context(|| format!("revoke {}", path.display()))?
    };
    if done.newly {
        println!("revoked serial {}", done.serial);
    } else {
        println!("serial {} was already revoked", done.serial);
    }
    println!(
        "crl:   {} ({} revoked certificate{})",
        done.crl.display(),
        done.total,
        if done.total == 1 { "" } else { "s" }
    );
    println!(
        "nodes with `crl = \"{}\"` in [tls] refuse it after a reload: kill -HUP <node pid>",
        done.crl.display()
    );
    Ok(ExitCode::SUCCESS)
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
        PkiCommand::Revoke {
            dir,
            user,
            bof,
            node,
            cert,
            serial,
        } => revoke(&dir, user, bof, node, cert, serial),
        PkiCommand::Crl { dir } => {
            let layout = PkiLayout::new(&dir);
            let n = layout
                .write_crl()
                .with_context(|| format!("write the CRL in {}", dir.display()))?;
            println!("crl:   {} ({n} revoked)", layout.crl().display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
