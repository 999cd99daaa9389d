//! The socket side shared by the fake servers (the Loki receiver and the Kubernetes API server):
//! binding a port again after being "down", and an accept loop that can be taken down with every
//! connection it opened.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// How long binding the same port again keeps retrying.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent to the accept loop to take the listener down; it answers on the enclosed channel once
/// the socket and all connections are closed.
pub(crate) type StopSignal = oneshot::Receiver<std::sync::mpsc::Sender<()>>;

/// The ports this process handed out: its fake servers' (up or down) and `free_port`'s. A port
/// picked with `127.0.0.1:0` is never one of them, so a server that is down gets its port back and
/// no other server or agent of a test running beside it takes it meanwhile (which once made an
/// agent push to another test's receiver during an "outage").
static OWNED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Binds a port of 127.0.0.1 that no fake server or `free_port` of this process ever had, and keeps
/// it as this process's.
pub(crate) fn bind_new_port(who: &str) -> std::net::TcpListener {
    let mut taken = Vec::new();
    loop {
        let l = bind_with_retry("127.0.0.1:0".parse().expect("a literal address"), who);
        let port = l
            .local_addr()
            .unwrap_or_else(|e| panic!("{who}: a bound socket has no address: {e}"))
            .port();
        if OWNED.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return l;
        }
        // Held until a new port is found, so the next bind gets another one.
        taken.push(l);
    }
}

/// Binds `addr`, retrying while the port is in use (e.g. taken for a moment by someone's
/// outgoing connection) for up to [`REBIND_TIMEOUT`]. The standard library sets `SO_REUSEADDR`,
/// so leftover `TIME_WAIT` connections do not block the bind. `who` names the server in panics.
pub(crate) fn bind_with_retry(addr: SocketAddr, who: &str) -> std::net::TcpListener {
    let deadline = Instant::now() + REBIND_TIMEOUT;
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)
                    .unwrap_or_else(|e| panic!("{who}: setting O_NONBLOCK on the listener failed: {e}"));
                return l;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!(
                "{who}: cannot bind {addr}: {e}; if the port was taken while the server was down, another process is using it"
            ),
        }
    }
}

/// Accepts connections on `listener`, serving each with `serve`, until `stop` fires (or its sender
/// is dropped); then closes the listening socket and every open connection.
pub(crate) async fn accept_loop<F, Fut>(listener: std::net::TcpListener, who: &str, mut stop: StopSignal, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::from_std(listener)
        .unwrap_or_else(|e| panic!("{who}: registering the listening socket with tokio failed: {e}"));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            ack = &mut stop => {
                drop(listener);
                conns.abort_all();
                while conns.join_next().await.is_some() {}
                if let Ok(ack) = ack {
                    let _ = ack.send(());
                }
                return;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => match res {
                Ok((stream, _)) => {
                    conns.spawn(serve(stream));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

type StopSender = oneshot::Sender<std::sync::mpsc::Sender<()>>;

/// What a fake server does with its listening socket: spawn its accept loop (on the runtime it is
/// called in) that ends when the signal fires.
pub(crate) type ServeFn = Box<dyn Fn(std::net::TcpListener, StopSignal) + Send + Sync>;

/// A fake server's socket and runtime thread: listening on `127.0.0.1:0`, it can go down
/// (connections refused, open ones dropped) and come up again on the same port.
pub(crate) struct ServerThread {
    pub addr: SocketAddr,
    who: &'static str,
    handle: tokio::runtime::Handle,
    serve: ServeFn,
    /// Present while the listener is up; sending on it takes the listener down. Held locked
    /// while going up or down, so concurrent calls do not race for the port.
    listener: std::sync::Mutex<Option<StopSender>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Starts the runtime thread and the listener. Panics if either cannot be created: a test
    /// cannot go on without its server.
    pub(crate) fn start(who: &'static str, serve: ServeFn) -> ServerThread {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fake-{who}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("{who}: building the tokio runtime failed: {e}"));
                let _ = handle_tx.send(rt.handle().clone());
                rt.block_on(async {
                    let _ = shutdown_rx.await;
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .unwrap_or_else(|e| panic!("{who}: spawning its thread failed: {e}"));
        let handle = handle_rx
            .recv()
            .unwrap_or_else(|_| panic!("{who}: its runtime thread died while starting"));
        let listener = bind_new_port(who);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{who}: a bound socket has no address: {e}"));
        let server = ServerThread {
            addr,
            who,
            handle,
            serve,
            listener: std::sync::Mutex::new(None),
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        };
        let stop = server.up(listener);
        *server.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        server
    }

    fn up(&self, listener: std::net::TcpListener) -> StopSender {
        let (stop_tx, stop_rx) = oneshot::channel();
        let _guard = self.handle.enter();
        (self.serve)(listener, stop_rx);
        stop_tx
    }

    /// `true`: close the listening socket and every open connection (clients get "connection
    /// refused"); `false`: listen again on the same port.
    pub(crate) fn set_down(&self, down: bool) {
        let mut listener = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        match (down, listener.take()) {
            (true, Some(stop)) => {
                let (ack_tx, ack_rx) = std::sync::mpsc::channel();
                if stop.send(ack_tx).is_ok() {
                    let _ = ack_rx.recv_timeout(Duration::from_secs(10));
                }
            }
            (true, None) => {}
            (false, Some(stop)) => *listener = Some(stop),
            (false, None) => *listener = Some(self.up(bind_with_retry(self.addr, self.who))),
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.listener.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.set_down(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While a server is down its port is nobody else's: new servers and `free_port` get other
    /// ports, and the server comes back up on its own.
    #[test]
    fn a_down_servers_port_is_not_handed_out() {
        let receiver = crate::receiver::Receiver::start();
        let port = receiver.addr().port();
        receiver.set_down(true);
        for _ in 0..2_000 {
            assert_ne!(bind_new_port("test").local_addr().unwrap().port(), port);
            assert_ne!(crate::prom::free_port(), port);
        }
        receiver.set_down(false);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
}
