//! `nadc push --spool DIR [--follow]`: a long-running BOF. Rows are parsed,
//! batched and made durable in the on-disk spool (nadc-bof's `spool`), and
//! a delivery loop sends the spool to the node, retrying with backoff
//! while the node is down or shedding load.
//!
//! Inputs: a file (read once, or with `--follow` tailed for appended rows
//! like `tail -f`), `-` (stdin until end of input), or with `--follow` a
//! directory, whose `*.csv` / `*.ndjson` files are taken in name order and
//! moved to `DIR/done/` once every row is in the spool (a writer should
//! create a file under another name and rename it into place when
//! complete); a file whose header cannot be read is moved to `DIR/failed/`
//! with the reason. A file interrupted by a crash is spooled again from its
//! start on the next run; the node drops the duplicates by read id.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nadc_bof::format::{self, Format};
use nadc_bof::pb;
use nadc_bof::spool::{self, DeliveryEvent, RetryPolicy, Spool, SpoolConfig};
use tokio::sync::watch;

use crate::client::{PushArgs, input_format};

/// How long a partly filled batch waits for more rows before it is spooled.
const LINGER: Duration = Duration::from_millis(200);

pub async fn push_spooled(a: PushArgs, spool_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let spool = Arc::new(
        Spool::open(SpoolConfig {
            max_bytes: a.spool_max_mb.max(1) << 20,
            ..SpoolConfig::new(&spool_dir)
        })
        .with_context(|| format!("open spool {}", spool_dir.display()))?,
    );
    let pending = spool.status();
    if pending.written > pending.acked {
        eprintln!(
            "spool {}: {} batches from an earlier run not yet acknowledged; sending them first",
            spool_dir.display(),
            pending.written - pending.acked
        );
    }
    let (node, tls) = crate::client::resolve_node(&a.node)?;
    let channel = nadc_bof::connect_lazy(&node, &tls)?;

    // `stop_input`: stop reading input (a signal, or the input ended).
    // `stop_delivery`: deliver what is spooled, then stop.
    let stop_input = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (stop_input, interrupted) = (stop_input.clone(), interrupted.clone());
        let signal = shutdown_signal();
        tokio::spawn(async move {
            signal.await;
            eprintln!("stopping: no more input is read; delivering what is spooled");
            interrupted.store(true, Ordering::SeqCst);
            stop_input.store(true, Ordering::SeqCst);
        });
    }

    let mut totals = nadc_bof::push::Progress::default();
    let mut shown = 0usize;
    let all_errors = a.all_errors;
    let started = Instant::now();
    let delivery = {
        let spool = spool.clone();
        let totals = &mut totals;
        let shown = &mut shown;
        async move {
            let mut failing = false;
            spool::deliver(
                spool.clone(),
                channel,
                a.window,
                RetryPolicy::default(),
                stop_rx,
                |e| match e {
                    DeliveryEvent::Acked {
                        accepted,
                        duplicates,
                        rejected,
                        ..
                    } => {
                        if failing {
                            failing = false;
                            eprintln!("node reachable again: delivering");
                        }
                        totals.batches += 1;
                        totals.accepted += u64::from(accepted);
                        totals.duplicates += u64::from(duplicates);
                        totals.rejected += rejected.len() as u64;
                        totals.acknowledged += u64::from(accepted + duplicates)
                            + rejected.len() as u64;
                        for x in rejected {
                            if all_errors || *shown < 20 {
                                println!(
                                    "  rejected: batch {} read {} ({:?}): {}: {}",
                                    x.batch_seq, x.index, x.read_id, x.code, x.message
                                );
                            }
                            *shown += 1;
                        }
                    }
                    DeliveryEvent::Retrying { error, wait } => {
                        failing = true;
                        let st = spool.status();
                        eprintln!(
                            "not delivered ({error}); {} batches spooled ({} bytes); retrying in {:.1} s",
                            st.written - st.acked,
                            st.bytes,
                            wait.as_secs_f64()
                        );
                    }
                },
            )
            .await
        }
    };
    let input = {
        let (spool, stop_input) = (spool.clone(), stop_input.clone());
        let file = a.file.clone();
        let (fmt, follow, batch_size) = (a.format.clone(), a.follow, a.batch_size.max(1));
        async move {
            let r = spool_input(
                &spool,
                &file,
                fmt.as_deref(),
                follow,
                batch_size,
                &stop_input,
            )
            .await;
            // Whatever ended the input, what is spooled is still delivered.
            let _ = stop_tx.send(true);
            r
        }
    };
    let drain = a.drain_timeout_s;
    let (input_result, delivered) = tokio::join!(input, async {
        // Once input has stopped, give delivery `drain` seconds.
        tokio::select! {
            r = delivery => Some(r),
            _ = async {
                while !interrupted.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_secs(drain)).await;
            } => None,
        }
    });
    let malformed = input_result?;
    let st = spool.status();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pushed {} reads in {secs:.1} s: {} accepted, {} duplicates, {} rejected, {malformed} malformed rows",
        totals.acknowledged, totals.accepted, totals.duplicates, totals.rejected
    );
    if shown > 20 && !all_errors {
        println!("  ... and {} more rejected (use --all-errors)", shown - 20);
    }
    match delivered {
        Some(Ok(())) => {
            println!("spool {}: everything delivered", spool_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(anyhow::Error::new(e).context(format!(
            "delivery stopped; {} batches stay in spool {} for the next run",
            st.written - st.acked,
            spool_dir.display()
        ))),
        None => {
            println!(
                "spool {}: {} batches not yet acknowledged stay spooled for the next run",
                spool_dir.display(),
                st.written - st.acked
            );
            Ok(ExitCode::from(3))
        }
    }
}

/// Listens for SIGTERM and SIGINT from now on (registered before this
/// returns, so a signal that comes early neither kills the process nor is
/// missed) and resolves when one arrives.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads the input into the spool; returns the number of malformed rows.
async fn spool_input(
    spool: &Arc<Spool>,
    file: &Path,
    format: Option<&str>,
    follow: bool,
    batch_size: usize,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    if follow && file.is_dir() {
        return follow_dir(spool, file, format, batch_size, stop).await;
    }
    let fmt = input_format(file, format)?;
    let input: Box<dyn Read + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
        if follow {
            Box::new(Tail {
                file: f,
                stop: stop.clone(),
            })
        } else {
            Box::new(f)
        }
    };
    let name = file.display().to_string();
    let rows = format::read_rows(input, fmt).with_context(|| format!("read {name}"))?;
    spool_rows(spool, rows, &name, batch_size, stop).await
}

/// Takes the directory's complete files in name order, forever (until a
/// signal).
async fn follow_dir(
    spool: &Arc<Spool>,
    dir: &Path,
    format: Option<&str>,
    batch_size: usize,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let (done, failed) = (dir.join("done"), dir.join("failed"));
    for d in [&done, &failed] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let mut malformed = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    && (format.is_some() || Format::from_path(p).is_some())
            })
            .collect();
        files.sort();
        if files.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        for path in files {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let name = path.display().to_string();
            let rows = input_format(&path, format).and_then(|fmt| {
                let f = std::fs::File::open(&path).with_context(|| format!("open {name}"))?;
                Ok(format::read_rows(Box::new(f), fmt)?)
            });
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    // A file that cannot be read at all must not stop the
                    // BOF: it is set aside with the reason.
                    let to = failed.join(path.file_name().unwrap_or_default());
                    std::fs::rename(&path, &to)
                        .with_context(|| format!("move {name} to {}", to.display()))?;
                    eprintln!("refused {name}: {e:#}; moved to {}", to.display());
                    continue;
                }
            };
            malformed += spool_rows(spool, rows, &name, batch_size, stop).await?;
            if stop.load(Ordering::SeqCst) {
                // Interrupted part-way: the file stays to be taken again.
                break;
            }
            let to = done.join(path.file_name().unwrap_or_default());
            std::fs::rename(&path, &to)
                .with_context(|| format!("move {} to {}", path.display(), to.display()))?;
            eprintln!("spooled {}", path.display());
        }
    }
    Ok(malformed)
}

/// Parses rows on a thread of its own and spools them in batches of
/// `batch_size`, or fewer after [`LINGER`] without a new row, until the
/// input ends or `stop`. (The thread is detached: a read blocked on stdin
/// must not keep the process from exiting.)
async fn spool_rows(
    spool: &Arc<Spool>,
    rows: format::Rows<pb::Read>,
    name: &str,
    batch_size: usize,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(batch_size.clamp(1, 10_000));
    std::thread::spawn(move || {
        for row in rows {
            if tx.blocking_send(row).is_err() {
                break;
            }
        }
    });
    let mut malformed = 0;
    let mut batch: Vec<pb::Read> = Vec::with_capacity(batch_size);
    loop {
        let next = match tokio::time::timeout(LINGER, rx.recv()).await {
            Ok(r) => r,
            Err(_) => {
                flush(spool, &mut batch).await?;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
        };
        match next {
            Some(Ok(r)) => {
                batch.push(r);
                if batch.len() >= batch_size {
                    flush(spool, &mut batch).await?;
                }
            }
            Some(Err(e)) => {
                malformed += 1;
                eprintln!("  malformed: {name}: {e}");
            }
            None => break,
        }
    }
    flush(spool, &mut batch).await?;
    Ok(malformed)
}

async fn flush(spool: &Arc<Spool>, batch: &mut Vec<pb::Read>) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let reads = std::mem::take(batch);
    let mut warned = false;
    loop {
        let (s, r) = (spool.clone(), reads.clone());
        match tokio::task::spawn_blocking(move || s.append(&r)).await? {
            Ok(_) => {
                if warned {
                    eprintln!("spool has room again: reading input");
                }
                return Ok(());
            }
            Err(e @ spool::SpoolError::Full { .. }) => {
                if !warned {
                    spool::warn_full(&e);
                    eprintln!("WARNING: {e}; input is paused until the node acknowledges");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A file followed like `tail -f`: at its end, waits for more instead of
/// ending, until `stop`.
struct Tail {
    file: std::fs::File,
    stop: Arc<AtomicBool>,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 || buf.is_empty() || self.stop.load(Ordering::SeqCst) {
                return Ok(n);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
