//! reload: a new config without a restart, on SIGHUP or `POST /reload` (also `/-/reload`, as
//! Prometheus, Promtail and Alloy serve it).
//!
//! The new config is loaded and checked in full — parsed, validated, its relabel rules and stages
//! compiled, its clients' credentials read — before anything changes. A config that fails any of
//! that is rejected with the precise error and the running one goes on. An accepted one is handed
//! to the reader (targets, `tail` settings; see `tail::Reconfig`: files of unchanged targets are not
//! touched) and, when the clients changed, to the batcher (new endpoints; the old pushers finish
//! what they hold, with the new client of their place: a batch Loki refused for the old
//! credentials, tenant or URL goes with the fixed ones at once); a new `server.log_level` is
//! applied at once. Settings that only take effect at a
//! restart are named in a warning.

use crate::batch::Endpoint;
use crate::checkpoint::Tracker;
use crate::config::Config;
use crate::discover::Targets;
use crate::metrics::{Metrics, ResultLabel};
use crate::push::{HttpClient, Pusher};
use crate::tail::Reconfig;
use crate::watch::WatchEvent;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Loads and validates the config again (the file, with the command line's flags on top).
pub type Loader = Box<dyn Fn() -> Result<Config, String> + Send>;

/// The running config and the handles a reload needs.
pub struct Reloader {
    pub load: Loader,
    pub current: Config,
    pub reader: crossbeam_channel::Sender<Reconfig>,
    /// Wakes the reader to look at its new config at once.
    pub wake: crossbeam_channel::Sender<WatchEvent>,
    pub batcher: crate::batch::EndpointSwap,
    pub tracker: Arc<Tracker>,
    pub metrics: Arc<Metrics>,
    /// Every pusher started (those replaced by a reload end once their queue is sent).
    pub push_tasks: Vec<JoinHandle<()>>,
    /// The client of each place (`client`, `clients[0]`...), which its pushers, old and new, post with.
    pub clients: Vec<ClientSlots>,
    /// The agent's log, whose level a reload sets (None: set up by someone else, e.g. a test).
    pub logging: Option<crate::logging::Logging>,
}

/// Where the pushers of one place in the config (`client`, `clients[0]`...) find its client.
pub type ClientSlots = watch::Sender<Arc<HttpClient>>;

/// The endpoints of `cfg`'s clients (`client`, then `clients`), their pushers started. Every
/// client is built (credentials read) before any pusher starts or any of `slots` changes; then
/// each goes into the slot of its place, where the pushers a reload replaced find it too. Call
/// inside the tokio runtime.
pub fn start_endpoints(
    cfg: &Config,
    tracker: &Arc<Tracker>,
    metrics: &Arc<Metrics>,
    slots: &mut Vec<ClientSlots>,
) -> Result<(Vec<Endpoint>, Vec<JoinHandle<()>>), String> {
    let clients: Vec<_> = std::iter::once(&cfg.client)
        .chain(&cfg.clients)
        .map(|c| Ok((c, Arc::new(HttpClient::new(c)?))))
        .collect::<Result<_, String>>()?;
    let (mut endpoints, mut tasks) = (Vec::new(), Vec::new());
    for (place, (c, client)) in clients.into_iter().enumerate() {
        match slots.get(place) {
            Some(slot) => {
                slot.send_replace(client);
            }
            None => slots.push(watch::Sender::new(client)),
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        endpoints.push(Endpoint {
            batch_size: c.batch_size.0 as usize,
            batch_wait: c.batch_wait.0,
            tx,
        });
        let pusher = Pusher {
            client: slots[place].subscribe(),
            backoff: c.backoff.clone(),
            drop_on_client_error: c.drop_on_client_error,
            tracker: tracker.clone(),
            metrics: metrics.clone(),
        };
        tasks.push(tokio::spawn(pusher.run(rx)));
    }
    Ok((endpoints, tasks))
}

impl Reloader {
    /// Reloads, records the outcome in the metrics and the log, and says what happened.
    pub fn reload(&mut self) -> Result<String, String> {
        let result = self.try_reload();
        let (ok, label) = match &result {
            Ok(summary) => {
                tracing::info!(summary = %summary, "config reloaded");
                (true, "applied")
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload rejected; the previous config keeps running");
                (false, "rejected")
            }
        };
        self.metrics.config_loaded(ok);
        self.metrics.reloads.get_or_create(&ResultLabel { result: label }).inc();
        result
    }

    fn try_reload(&mut self) -> Result<String, String> {
        let mut cfg = (self.load)()?;
        let targets = Targets::from_config(&cfg)?;
        let clients_changed =
            differs(&cfg.client, &self.current.client) || differs(&cfg.clients, &self.current.clients);
        // Built before anything is applied: unreadable credentials reject the whole reload.
        let endpoints = match clients_changed {
            true => Some(start_endpoints(&cfg, &self.tracker, &self.metrics, &mut self.clients)?),
            false => None,
        };
        let level_changed = cfg.server.log_level != self.current.server.log_level;
        let restart = self.keep_restart_settings(&mut cfg);
        if !restart.is_empty() {
            tracing::warn!(settings = %restart.join(", "),
                "these settings changed but take effect only at a restart; the running values are kept until then");
        }
        let reconfig = Reconfig {
            targets,
            external_labels: cfg.client.external_labels.clone(),
            tail: cfg.tail.clone(),
        };
        self.reader
            .send(reconfig)
            .map_err(|_| "the reader has stopped; the reload is not applied".to_string())?;
        let _ = self.wake.try_send(WatchEvent::Metadata);
        if let Some((endpoints, tasks)) = endpoints {
            if !self.batcher.send(endpoints) {
                return Err("the batcher has stopped; the reload is not applied".to_string());
            }
            self.push_tasks.extend(tasks);
        }
        let level_applied = level_changed
            && match self.logging.as_ref().map(|l| l.set_level(&cfg.server.log_level)) {
                Some(Ok(())) => true,
                Some(Err(why)) => {
                    tracing::warn!(log_level = %cfg.server.log_level, "server.log_level not applied: {why}");
                    false
                }
                None => false,
            };
        let summary = format!(
            "{} targets, {} clients{}{}{}",
            cfg.targets.len(),
            1 + cfg.clients.len(),
            if clients_changed { " (clients changed)" } else { "" },
            if level_applied { " (log level changed)" } else { "" },
            if restart.is_empty() {
                String::new()
            } else {
                format!("; at the next restart: {}", restart.join(", "))
            }
        );
        self.current = cfg;
        Ok(summary)
    }

    /// Settings only a restart applies: named when they changed, and kept at their running values
    /// in `cfg` (so the next reload compares with what really runs).
    fn keep_restart_settings(&self, cfg: &mut Config) -> Vec<&'static str> {
        let cur = &self.current;
        let mut changed = Vec::new();
        let mut keep = |name: &'static str, differ: bool| {
            if differ {
                changed.push(name);
            }
        };
        // All of `server` but its log level, which a reload applies.
        let level = std::mem::replace(&mut cfg.server.log_level, cur.server.log_level.clone());
        keep("server", differs(&cfg.server, &cur.server));
        keep("positions", differs(&cfg.positions, &cur.positions));
        keep("discovery", differs(&cfg.discovery, &cur.discovery));
        keep("kubernetes", differs(&cfg.kubernetes, &cur.kubernetes));
        keep("tail.io", differs(&cfg.tail.io, &cur.tail.io));
        keep("tail.watch", differs(&cfg.tail.watch, &cur.tail.watch));
        keep(
            "tail.ebpf_write_hook",
            differs(&cfg.tail.ebpf_write_hook, &cur.tail.ebpf_write_hook),
        );
        keep("tail.ring_capacity", cfg.tail.ring_capacity != cur.tail.ring_capacity);
        keep("journal", differs(&cfg.journal, &cur.journal));
        keep("max_threads", cfg.max_threads != cur.max_threads);
        cfg.server = crate::config::ServerConfig {
            log_level: level,
            ..cur.server.clone()
        };
        cfg.positions = cur.positions.clone();
        cfg.discovery = cur.discovery;
        cfg.kubernetes = cur.kubernetes.clone();
        cfg.tail.io = cur.tail.io;
        cfg.tail.watch = cur.tail.watch;
        cfg.tail.ebpf_write_hook = cur.tail.ebpf_write_hook;
        cfg.tail.ring_capacity = cur.tail.ring_capacity;
        cfg.journal = cur.journal.clone();
        cfg.max_threads = cur.max_threads;
        changed
    }
}

/// Whether two config values differ (compared as they serialize: every setting has a value).
fn differs<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
}
