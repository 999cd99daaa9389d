//! agent: wires the stages together and runs them until SIGTERM/SIGINT.
//!
//! Threads: the reader (files → ring), the batcher (ring → encoded batches), and a small tokio runtime
//! for the network (push, HTTP server, positions sync). Shutdown: stop reading, let the batcher flush,
//! wait up to `shutdown_timeout` for in-flight batches, write the acknowledged positions, exit.

use crate::batch::run_batcher;
use crate::checkpoint::{Positions, Tracker};
use crate::config::{Config, Discovery};
use crate::discover::kube::PodCache;
use crate::discover::Targets;
use crate::metrics::Metrics;
use crate::tail::{Io, Reader, ReaderParts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs the agent until a termination signal; `load` loads the config again on SIGHUP and
/// `POST /reload`; `logging`, when given, lets a reload change the log level. Errors are setup
/// problems, worded for the user.
pub fn run(cfg: Config, load: crate::reload::Loader, logging: Option<crate::logging::Logging>) -> Result<(), String> {
    if cfg.max_threads > 0 {
        cap_cpus(cfg.max_threads)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shipper-net")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    rt.block_on(run_async(cfg, load, logging))
}

async fn run_async(
    mut cfg: Config,
    load: crate::reload::Loader,
    logging: Option<crate::logging::Logging>,
) -> Result<(), String> {
    cfg.tail.max_open_files = crate::tail::fit_open_files(cfg.tail.max_open_files);
    let metrics = Arc::new(Metrics::new());
    alertable_series_at_zero(&metrics);
    let tracker = Arc::new(Tracker::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));

    // Every endpoint's client is built (credentials read) before anything starts.
    let mut clients = Vec::new();
    let (endpoints, push_tasks) = crate::reload::start_endpoints(&cfg, &tracker, &metrics, &mut clients)?;
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    if !cfg.server.http_listen.is_empty() {
        let listener = crate::server::bind(&cfg.server.http_listen).await?;
        tracing::info!(addr = %cfg.server.http_listen, "serving /metrics, /ready, /healthz and POST /reload");
        tokio::spawn(crate::server::serve(
            listener,
            metrics.clone(),
            ready.clone(),
            reload_tx,
        ));
    }

    let positions_path = cfg.positions.filename.clone();
    let mut positions = Positions::load(&positions_path);
    tracing::info!(file = %positions_path.display(), files = positions.files.len(), "positions loaded");
    if positions.saved_at.is_none() {
        if let Some(from) = crate::config::ImportFrom::parse(&cfg.positions.import_from)? {
            positions.files = crate::tail::import_positions(&from);
        }
        crate::checkpoint::mark_first_start(&positions_path, &metrics, &positions.files);
    }

    let (ring_tx, ring_rx) = crate::ring::ring(cfg.tail.ring_capacity);
    metrics.ring_capacity.set(cfg.tail.ring_capacity as i64);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(4096);
    let mut targets = Targets::from_config(&cfg)?;
    if cfg.discovery == Discovery::Kubernetes && cfg.kubernetes.api {
        targets = targets.with_pods(watch_pods(&cfg, &ev_tx, &metrics)?);
    }
    // Reading more often than the soonest batch can go buys nothing (see `tail::sweep_gap`).
    let batch_wait = std::iter::once(&cfg.client)
        .chain(&cfg.clients)
        .map(|c| c.batch_wait.0)
        .min();
    let sweep_gap = crate::tail::sweep_gap(batch_wait.unwrap_or_default());
    let watcher = crate::watch::start(
        cfg.tail.watch,
        cfg.tail.ebpf_write_hook,
        ev_tx.clone(),
        metrics.clone(),
        sweep_gap,
    )?;
    let (reconfig_tx, reconfig_rx) = crossbeam_channel::unbounded();
    let reader = Reader::new(ReaderParts {
        cfg: cfg.tail.clone(),
        targets,
        external_labels: cfg.client.external_labels.clone(),
        io: Io::new(cfg.tail.io),
        watcher,
        events: ev_rx,
        ring: ring_tx.clone(),
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        saved: positions.files,
        saved_at: positions.saved_at,
        saved_written: positions.written,
        scratch: match positions_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => ".".into(),
        },
        reconfig: reconfig_rx,
        sweep_gap,
    });
    let (scanned_tx, scanned_rx) = tokio::sync::oneshot::channel();
    let reader_thread = std::thread::Builder::new()
        .name("shipper-reader".into())
        .spawn(move || reader.run(scanned_tx))
        .map_err(|e| format!("cannot start the reader thread: {e}"))?;
    // The systemd journal (`journal:`): its own thread, into the same ring (takes the last sender).
    let journal_parts = crate::journal::JournalParts {
        ring: ring_tx,
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        saved_cursor: positions.journal_cursor,
    };
    let journal_cursors: Option<Arc<dyn crate::checkpoint::CursorSource>> =
        crate::journal::start(&cfg, journal_parts)?.map(|j| j.cursors as _);

    let (swap_tx, swap_rx) = crossbeam_channel::unbounded();
    let swap_tx = crate::batch::EndpointSwap {
        tx: swap_tx,
        waker: ring_rx.waker(),
    };
    let (t, m) = (tracker.clone(), metrics.clone());
    std::thread::Builder::new()
        .name("shipper-batcher".into())
        .spawn(move || run_batcher(ring_rx, endpoints, swap_rx, t, m))
        .map_err(|e| format!("cannot start the batcher thread: {e}"))?;

    // Positions follow the files (see checkpoint::sync): written once the reader has found them.
    let positions_log = Arc::new(std::sync::Mutex::new(crate::checkpoint::PositionsLog::new(
        positions_path.clone(),
    )));
    let sync_task = tokio::spawn(
        crate::checkpoint::PositionsWriter {
            log: positions_log.clone(),
            period: cfg.positions.sync_period.0,
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            journal: journal_cursors.clone(),
        }
        .run(),
    );
    // Ready once the files are found and watched: a write after this is noticed.
    let _ = scanned_rx.await;
    ready.store(true, Ordering::Relaxed);
    metrics.config_loaded(true);
    tracing::info!("shipper is running");

    let mut reloader = crate::reload::Reloader {
        load,
        current: cfg,
        reader: reconfig_tx,
        wake: ev_tx,
        batcher: swap_tx,
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        push_tasks,
        clients,
        logging,
    };
    wait_for_stop(&mut reloader, &mut reload_rx).await;
    let shutdown_timeout = reloader.current.shutdown_timeout;
    tracing::info!(timeout = %shutdown_timeout, "stopping: no more reading; flushing in-flight batches");
    ready.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // The reader finishes its current read; dropping it closes the ring, so the batcher flushes and the
    // push queue closes once the pusher has sent everything.
    let _ = tokio::task::spawn_blocking(move || reader_thread.join()).await;
    let pushed = futures_join_all(std::mem::take(&mut reloader.push_tasks));
    if tokio::time::timeout(shutdown_timeout.0, pushed).await.is_err() {
        tracing::warn!(
            "shutdown_timeout reached with batches still unacknowledged; they are read again at the next start"
        );
    }
    sync_task.abort();
    if tracker.is_recovered() {
        crate::checkpoint::save(&positions_log, &tracker, &metrics, journal_cursors.clone()).await;
    } else {
        tracing::warn!(file = %positions_path.display(),
            "stopped before the files rotated away while we were down were recovered; positions not written (the previous ones stay, so the next start recovers them)");
    }
    tracing::info!("stopped");
    Ok(())
}

/// `max_threads`: this thread, and every thread started after it (all of the agent's), runs on
/// at most `n` of the CPUs it may use — a hard cap on the agent's CPU share.
fn cap_cpus(n: usize) -> Result<(), String> {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let allowed =
        sched_getaffinity(None).map_err(|e| format!("max_threads: cannot read the CPUs this process may use: {e}"))?;
    let mut capped = CpuSet::new();
    for cpu in (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c)).take(n) {
        capped.set(cpu);
    }
    sched_setaffinity(None, &capped).map_err(|e| format!("max_threads: cannot limit the agent to {n} CPUs: {e}"))?;
    tracing::info!(
        max_threads = n,
        cpus = capped.count(),
        "the agent runs on at most max_threads CPUs"
    );
    Ok(())
}

/// Waits for every push task (each ends when the batcher closes its queue and it sent everything).
async fn futures_join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Serves reloads (SIGHUP, `POST /reload`) until SIGTERM or SIGINT.
async fn wait_for_stop(reloader: &mut crate::reload::Reloader, requests: &mut crate::server::ReloadRequests) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!(
            "cannot listen for SIGTERM/SIGINT/SIGHUP; stop the agent with SIGKILL (positions are written as they change)"
        );
        return std::future::pending().await;
    };
    // Target group files of file_sd_configs: a change is applied as a reload.
    let mut sd = crate::config::FileSdState::of(&reloader.current.targets);
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                let _ = reloader.reload();
            }
            Some(reply) = requests.recv() => {
                tracing::info!("POST /reload: reloading the config");
                let _ = reply.send(reloader.reload());
            }
            _ = sd.tick() => {
                if crate::config::FileSdState::of(&reloader.current.targets) == sd {
                    continue;
                }
                tracing::info!("file_sd_configs: the target files changed; reloading the config");
                let _ = reloader.reload();
            }
        }
        sd = crate::config::FileSdState::of(&reloader.current.targets);
    }
}

/// The pod metadata cache, kept up to date by a watch at the API server.
#[cfg(feature = "kubernetes")]
fn watch_pods(
    cfg: &Config,
    events: &crossbeam_channel::Sender<crate::watch::WatchEvent>,
    metrics: &Arc<Metrics>,
) -> Result<Arc<PodCache>, String> {
    let wake = events.clone();
    // A full event queue means the reader is busy and looks at the cache's changes soon anyway.
    let pods = Arc::new(PodCache::new(
        &cfg.kubernetes,
        Box::new(move || {
            let _ = wake.try_send(crate::watch::WatchEvent::Metadata);
        }),
    ));
    crate::discover::kube::spawn(&cfg.kubernetes, pods.clone(), metrics.clone());
    Ok(pods)
}

#[cfg(not(feature = "kubernetes"))]
fn watch_pods(
    _: &Config,
    _: &crossbeam_channel::Sender<crate::watch::WatchEvent>,
    _: &Arc<Metrics>,
) -> Result<Arc<PodCache>, String> {
    Err("kubernetes.api: this shipper was built without the Kubernetes API client (cargo feature `kubernetes`); set kubernetes.api: false for path labels only, or build it with the feature".into())
}

/// Every labelled series an alert may read, at 0 from the start, for every label value the code
/// uses: `increase()` and `rate()` see no rise in a series born at its first count, so an alert on
/// it could not fire on the first event.
pub fn alertable_series_at_zero(m: &Metrics) {
    Metrics::zero(&m.dropped_entries, crate::push::dropped_reasons());
    Metrics::zero(&m.retries, crate::push::retry_reasons());
    Metrics::zero(&m.dropped_bytes, ["max_held_bytes"]);
    Metrics::zero(&m.labels_fitted, ["dropped", "cut"]);
    Metrics::zero(&m.journal_dropped, crate::journal::DROP_REASONS);
    Metrics::zero(&m.skipped_files, ["unreadable"]);
    for issue in crate::metrics::PARSE_ISSUES {
        let _ = m.parse_issues.get_or_create(&crate::metrics::IssueLabel { issue });
    }
    for r in crate::push::BLOCKED_REASONS {
        let _ = m.push_blocked.get_or_create(&Metrics::reason(r));
    }
    for r in crate::tail::PAUSE_REASONS {
        let _ = m.reading_paused.get_or_create(&Metrics::reason(r));
        let _ = m.reading_paused_seconds.get_or_create(&Metrics::reason(r));
    }
    for s in ["ok", "error"] {
        let _ = m.positions_writes.get_or_create(&Metrics::status(s));
    }
    for resource in crate::discover::kube::ERROR_RESOURCES {
        let _ = m.kube_watch_errors.get_or_create(&crate::metrics::ResourceLabel {
            resource: resource.into(),
        });
    }
}
