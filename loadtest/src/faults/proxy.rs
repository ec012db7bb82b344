//! A UDP forwarding proxy that can drop everything, for fault injection: put between two
//! replicators, it cuts their QUIC link the way a network partition would (packets vanish,
//! nobody is told), and heals it again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use aerolith_common::{Error, Result};

/// A running proxy; its tasks end with the runtime.
pub struct UdpProxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
}

impl UdpProxy {
    /// Forwards datagrams sent to the proxy's loopback address on to `target`, and replies
    /// back, while `down` is false. Must be called inside a tokio runtime.
    pub fn start(target: SocketAddr, down: Arc<AtomicBool>) -> Result<UdpProxy> {
        let io = |e: std::io::Error| Error::unavailable(format!("fault proxy: {e}"));
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
        std_socket.set_nonblocking(true).map_err(io)?;
        let addr = std_socket.local_addr().map_err(io)?;
        let front = Arc::new(UdpSocket::from_std(std_socket).map_err(io)?);
        tokio::spawn(forward(front, target, down.clone()));
        Ok(UdpProxy { addr, down })
    }

    /// Where clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops (true) or forwards (false) every datagram from now on, both ways.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

/// Client → target, with one upstream socket per client so replies find their way back.
async fn forward(front: Arc<UdpSocket>, target: SocketAddr, down: Arc<AtomicBool>) {
    let upstreams: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>> = Mutex::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = match front.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(_) => return,
        };
        if down.load(Ordering::Relaxed) {
            continue;
        }
        let known = upstreams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let up = match known {
            Some(up) => up,
            None => {
                let Ok(up) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                if up.connect(target).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                upstreams
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(client, up.clone());
                tokio::spawn(backward(up.clone(), front.clone(), client, down.clone()));
                up
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

/// Target → client.
async fn backward(
    up: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    down: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match up.recv(&mut buf).await {
            Ok(n) => {
                if !down.load(Ordering::Relaxed) {
                    let _ = front.send_to(&buf[..n], client).await;
                }
            }
            // A connected UDP socket reports an ICMP "port unreachable" for an earlier
            // datagram as an error (the target was not listening yet, or was restarting):
            // the link must survive that, as a real network path would.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(_) => return,
        }
    }
}
