//! A TCP proxy whose connections a test cuts at will, as a network fault would: a broker that
//! advertises the proxy's address gets all of its clients' traffic through it, and
//! [`CutProxy::cut`] drops every open connection at once, requests in flight included, so the
//! clients reconnect and retry what they never saw answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy: listens on a loopback port of its own and forwards each connection to the
/// target set by [`CutProxy::forward_to`] (connections before that are closed at once).
pub struct CutProxy {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    cuts: watch::Sender<u64>,
    open: Arc<AtomicUsize>,
    /// Runs the accept loop and the connections; dropped with the proxy.
    _rt: tokio::runtime::Runtime,
}

impl CutProxy {
    /// Binds a free loopback port and starts accepting.
    pub fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the proxy's runtime")?;
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the proxy")?;
        let addr = listener.local_addr()?;
        let target = Arc::new(Mutex::new(None));
        let (cuts, watching) = watch::channel(0u64);
        let open = Arc::new(AtomicUsize::new(0));
        rt.spawn(accept(listener, target.clone(), watching, open.clone()));
        Ok(CutProxy {
            addr,
            target,
            cuts,
            open,
            _rt: rt,
        })
    }

    /// `127.0.0.1:port` of the proxy, for clients and for the broker to advertise.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Forwards connections accepted from now on to `target`.
    pub fn forward_to(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = Some(target);
    }

    /// Closes every open connection (both sides); returns how many there were.
    pub fn cut(&self) -> usize {
        let n = self.open.load(Ordering::SeqCst);
        self.cuts.send_modify(|generation| *generation += 1);
        n
    }
}

async fn accept(
    listener: TcpListener,
    target: Arc<Mutex<Option<SocketAddr>>>,
    cuts: watch::Receiver<u64>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let Some(to) = *target.lock().unwrap_or_else(PoisonError::into_inner) else {
            continue; // dropped: closed
        };
        let mut cuts = cuts.clone();
        cuts.mark_unchanged();
        let open = open.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(to).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            open.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cuts.changed() => {}
            }
            open.fetch_sub(1, Ordering::SeqCst);
            // Both sockets close here.
        });
    }
}
