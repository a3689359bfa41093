//! The `nadc` command line: `serve`, `pki`, `push`, `cameras`, `search`,
//! `hotlist`, `alerts`, `node`, `demo`, `gen`. `anyhow` lives here only: everything below returns typed
//! errors, and this layer adds context in verb phrases.
#![deny(missing_docs, unsafe_code)]

mod alerting;
mod alibi;
mod analyse;
mod bench;
mod bench_alerts;
mod bench_analysis;
mod bench_peer;
mod client;
mod demo;
mod follow;
mod generate;
mod governance;
mod network;
mod output;
mod pattern;
mod pki;
mod profile;
mod replica;
mod reports;
mod serve;
mod sites;
mod store_cmd;
pub mod synth;
mod telemetry;
mod trigger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// nadc: a national ANPR data centre node, its BOF client and search tools.
#[derive(Parser, Debug)]
#[command(name = "nadc", version, about, long_about = None)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", env = "NADC_LOG_FORMAT")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node: gRPC over mutual TLS on a RocksDB store.
    Serve(serve::ServeArgs),
    /// Development PKI: a CA and node, BOF and user certificates.
    Pki {
        #[command(subcommand)]
        command: pki::PkiCommand,
    },
    /// Push reads from a CSV or NDJSON file (or `-` for stdin) as a force BOF.
    Push(client::PushArgs),
    /// Register or list cameras.
    Cameras {
        #[command(subcommand)]
        command: client::CamerasCommand,
    },
    /// Analyses for investigators and analysts (hot spots and timing,
    /// camera health, alibi and journey checks, subject profiles, associate
    /// networks).
    Analyse {
        #[command(subcommand)]
        command: analyse::AnalyseCommand,
    },
    /// Search the reads a node holds.
    Search {
        #[command(subcommand)]
        command: client::SearchCommand,
    },
    /// Hotlists: vehicles of interest whose every new read raises an alert.
    Hotlist {
        #[command(subcommand)]
        command: alerting::HotlistCommand,
    },
    /// Alerts: hotlist hits, convoys and cloned plates, as they are raised.
    Alerts {
        #[command(subcommand)]
        command: alerting::AlertsCommand,
    },
    /// Supervisors' authorisations to search data older than the standard tier.
    Authorise {
        #[command(subcommand)]
        command: governance::AuthoriseCommand,
    },
    /// Case registers and disclosure schedules.
    Disclosure {
        #[command(subcommand)]
        command: governance::DisclosureCommand,
    },
    /// Legal holds: keep a case's reads beyond retention.
    Hold {
        #[command(subcommand)]
        command: governance::HoldCommand,
    },
    /// The hash-chained audit log: verify it, query who did what.
    Audit {
        #[command(subcommand)]
        command: governance::AuditCommand,
    },
    /// Node information.
    Node {
        #[command(subcommand)]
        command: client::NodeCommand,
    },
    /// Replicated mode: build or rebuild a replica from a healthy one.
    Replica {
        #[command(subcommand)]
        command: replica::ReplicaCommand,
    },
    /// Offline maintenance of a stopped node's data directory.
    Store {
        #[command(subcommand)]
        command: store_cmd::StoreCommand,
    },
    /// Benchmarks (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Write synthetic traffic (cameras and reads per force) in the
    /// interchange format.
    Gen(generate::GenArgs),
    /// Everything in one go: a PKI, a node, simulated force BOFs pushing a
    /// synthetic day of traffic over mTLS, and sample searches.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Search latency from this client process: p50, p90, p99.
    Search(bench::BenchArgs),
    /// Hotlist hit latency (read acknowledged to alert received) under a
    /// steady ingest load.
    Alerts(bench_alerts::AlertsBenchArgs),
    /// Retrospective convoy time for a planted target on generated data.
    Convoy(bench_alerts::ConvoyBenchArgs),
}

/// How a client reaches a node: address and TLS files, from flags, else the
/// `NADC_NODE`, `NADC_CERT`, `NADC_KEY`, `NADC_CA` environment variables,
/// else a client config file (`--client-config`, `NADC_CLIENT_CONFIG`, or
/// `~/.config/nadc/client.toml`) with the keys `node`, `cert`, `key`, `ca`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// The node, as https://HOST:PORT (default https://127.0.0.1:7443).
    #[arg(long, env = "NADC_NODE")]
    pub node: Option<String>,
    /// Your client certificate (PEM).
    #[arg(long, env = "NADC_CERT")]
    pub cert: Option<PathBuf>,
    /// Your private key (PEM).
    #[arg(long, env = "NADC_KEY")]
    pub key: Option<PathBuf>,
    /// The CA certificate that issued the node's certificate (PEM).
    #[arg(long, env = "NADC_CA")]
    pub ca: Option<PathBuf>,
    /// Client config file (TOML: node, cert, key, ca).
    #[arg(long, env = "NADC_CLIENT_CONFIG")]
    pub client_config: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = !matches!(cli.command, Command::Serve(_) | Command::Demo(_));
    if quiet {
        // A command whose output is piped into `head` ends quietly when the
        // reader goes, as Unix tools do, instead of panicking on the broken
        // pipe. (Not for a node: a closed log pipe must not kill it.)
        sigpipe::reset();
    }
    telemetry::init(cli.log_format, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Pki { command } => pki::run(command),
            Command::Push(a) => client::push(a).await,
            Command::Cameras { command } => client::cameras(command).await,
            Command::Search { command } => client::search(command).await,
            Command::Analyse { command } => analyse::run(command).await,
            Command::Node { command } => client::node(command).await,
            Command::Hotlist { command } => alerting::hotlist(command).await,
            Command::Alerts { command } => alerting::alerts(command).await,
            Command::Authorise { command } => governance::authorise(command).await,
            Command::Audit { command } => governance::audit(command).await,
            Command::Hold { command } => governance::hold(command).await,
            Command::Disclosure { command } => governance::disclosure(command).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Gen(a) => generate::run(a),
            Command::Store { command } => store_cmd::run(command),
            Command::Replica { command } => replica::run(command).await,
            Command::Bench { command } => match command {
                BenchCommand::Search(a) => bench::run(a).await,
                BenchCommand::Alerts(a) => bench_alerts::alerts(a).await,
                BenchCommand::Convoy(a) => bench_alerts::convoy(a).await,
            },
        }
    });
    match result {
        Ok(code) => code,
        // The reader of our output went away (e.g. `| head`): not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|ce| {
                matches!(ce.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}
