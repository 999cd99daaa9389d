//! agent: wires the stages together and runs them until SIGTERM/SIGINT.
//!
//! Threads: the reader (files → ring), the batcher (ring → encoded batches), and a small tokio runtime
//! for the network (push, HTTP server, positions sync). Shutdown: stop reading, let the batcher flush,
//! wait up to `shutdown_timeout` for in-flight batches, write the acknowledged positions, exit.

use crate::batch::{run_batcher, Endpoint};
use crate::checkpoint::{Positions, Tracker};
use crate::config::{Config, Discovery};
use crate::discover::kube::PodCache;
use crate::discover::Targets;
use crate::metrics::Metrics;
use crate::push::{HttpClient, Pusher};
use crate::tail::{Io, Reader, ReaderParts};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs the agent until a termination signal. Errors are setup problems, worded for the user.
pub fn run(cfg: Config) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shipper-net")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    rt.block_on(run_async(cfg))
}

async fn run_async(mut cfg: Config) -> Result<(), String> {
    cfg.tail.max_open_files = crate::tail::fit_open_files(cfg.tail.max_open_files);
    let metrics = Arc::new(Metrics::new());
    let tracker = Arc::new(Tracker::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));

    // Every endpoint's client is built (credentials read) before anything starts.
    let clients: Vec<_> = std::iter::once(&cfg.client)
        .chain(&cfg.clients)
        .map(|c| Ok((c.clone(), HttpClient::new(c)?)))
        .collect::<Result<_, String>>()?;
    if !cfg.server.http_listen.is_empty() {
        let listener = crate::server::bind(&cfg.server.http_listen).await?;
        tracing::info!(addr = %cfg.server.http_listen, "serving /metrics, /ready and /healthz");
        tokio::spawn(crate::server::serve(listener, metrics.clone(), ready.clone()));
    }

    let positions_path = cfg.positions.filename.clone();
    let positions = Positions::load(&positions_path);
    tracing::info!(file = %positions_path.display(), files = positions.files.len(), "positions loaded");

    let (ring_tx, ring_rx) = crate::ring::ring(cfg.tail.ring_capacity);
    metrics.ring_capacity.set(cfg.tail.ring_capacity as i64);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(4096);
    let mut targets = Targets::from_config(&cfg)?;
    if cfg.discovery == Discovery::Kubernetes && cfg.kubernetes.api {
        targets = targets.with_pods(watch_pods(&cfg, &ev_tx, &metrics)?);
    }
    let watcher = crate::watch::start(cfg.tail.watch, ev_tx, metrics.clone())?;
    let reader = Reader::new(ReaderParts {
        cfg: cfg.tail.clone(),
        targets,
        external_labels: cfg.client.external_labels.clone(),
        io: Io::new(cfg.tail.io),
        watcher,
        events: ev_rx,
        ring: ring_tx,
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        saved: positions.files,
        saved_at: positions.saved_at,
    });
    let (scanned_tx, scanned_rx) = tokio::sync::oneshot::channel();
    let reader_thread = std::thread::Builder::new()
        .name("shipper-reader".into())
        .spawn(move || reader.run(scanned_tx))
        .map_err(|e| format!("cannot start the reader thread: {e}"))?;

    let mut endpoints = Vec::new();
    let mut push_tasks = Vec::new();
    for (c, client) in clients {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        endpoints.push(Endpoint {
            batch_size: c.batch_size.0 as usize,
            batch_wait: c.batch_wait.0,
            tx,
        });
        let pusher = Pusher {
            client,
            backoff: c.backoff.clone(),
            tracker: tracker.clone(),
            metrics: metrics.clone(),
        };
        push_tasks.push(tokio::spawn(pusher.run(rx)));
    }
    let (t, m) = (tracker.clone(), metrics.clone());
    std::thread::Builder::new()
        .name("shipper-batcher".into())
        .spawn(move || run_batcher(ring_rx, endpoints, t, m))
        .map_err(|e| format!("cannot start the batcher thread: {e}"))?;

    let sync_task = tokio::spawn(sync_positions(
        positions_path.clone(),
        cfg.positions.sync_period.0,
        tracker.clone(),
        metrics.clone(),
    ));
    // Ready once the files are found and watched: a write after this is noticed.
    let _ = scanned_rx.await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!("shipper is running");

    wait_for_signal().await;
    tracing::info!(timeout = %cfg.shutdown_timeout, "stopping: no more reading; flushing in-flight batches");
    ready.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // The reader finishes its current read; dropping it closes the ring, so the batcher flushes and the
    // push queue closes once the pusher has sent everything.
    let _ = tokio::task::spawn_blocking(move || reader_thread.join()).await;
    let pushed = futures_join_all(push_tasks);
    if tokio::time::timeout(cfg.shutdown_timeout.0, pushed).await.is_err() {
        tracing::warn!(
            "shutdown_timeout reached with batches still unacknowledged; they are read again at the next start"
        );
    }
    sync_task.abort();
    save_positions(&positions_path, &tracker, &metrics).await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for every push task (each ends when the batcher closes its queue and it sent everything).
async fn futures_join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!(
            "cannot listen for SIGTERM/SIGINT; stop the agent with SIGKILL (positions are synced periodically)"
        );
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn sync_positions(path: PathBuf, every: Duration, tracker: Arc<Tracker>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        save_positions(&path, &tracker, &metrics).await;
    }
}

async fn save_positions(path: &std::path::Path, tracker: &Tracker, metrics: &Metrics) {
    let files = tracker.snapshot();
    let p = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || Positions::save(&p, &files)).await;
    match result {
        Ok(Ok(())) => {
            metrics.positions_writes.get_or_create(&Metrics::status("ok")).inc();
        }
        Ok(Err(e)) => {
            metrics.positions_writes.get_or_create(&Metrics::status("error")).inc();
            tracing::warn!(file = %path.display(), error = %e,
                "cannot write the positions file; shipping goes on and it is retried at the next sync (check positions.filename's directory)");
        }
        Err(e) => tracing::warn!(error = %e, "positions write task failed"),
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
