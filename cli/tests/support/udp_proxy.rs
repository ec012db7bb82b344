//! A UDP forwarding proxy that can drop everything: put between two replicators, it cuts
//! their QUIC link the way a network partition would (packets vanish, nobody is told).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// A running proxy; dropping it stops nothing (its tasks end with the test's runtime).
pub struct UdpProxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
}

impl UdpProxy {
    /// Forwards datagrams sent to the returned proxy's address on to `target`, and replies
    /// back, while `down` is false. Must be called inside a tokio runtime.
    pub fn start(target: SocketAddr, down: Arc<AtomicBool>) -> UdpProxy {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the proxy");
        std_socket.set_nonblocking(true).expect("non-blocking");
        let addr = std_socket.local_addr().expect("proxy address");
        let front = Arc::new(UdpSocket::from_std(std_socket).expect("tokio socket"));
        let flag = down.clone();
        tokio::spawn(async move {
            // One upstream socket per client address, so replies find their way back.
            let upstreams: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>> = Mutex::default();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else {
                    return;
                };
                if flag.load(Ordering::Relaxed) {
                    continue;
                }
                let known = upstreams.lock().unwrap().get(&client).cloned();
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
                        upstreams.lock().unwrap().insert(client, up.clone());
                        tokio::spawn(relay_back(up.clone(), front.clone(), client, flag.clone()));
                        up
                    }
                };
                let _ = up.send(&buf[..n]).await;
            }
        });
        UdpProxy { addr, down }
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

async fn relay_back(
    up: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    down: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = up.recv(&mut buf).await {
        if !down.load(Ordering::Relaxed) {
            let _ = front.send_to(&buf[..n], client).await;
        }
    }
}
