//! The failure detector at work in a node: one task owns a [`Detector`],
//! the node's datagram socket and the detector's timers, and connects them
//! to the rest of the cluster plane. Members SWIM declares down go to
//! [`Liveness`](crate::Liveness) (coordinators skip them); ring entries it
//! hears are merged into the view; every ring change is published on it.
//!
//! The node spawns [`Cluster::run_detector`] on its background phase; the
//! loop ends, telling the cluster this node is going, when that phase
//! stops.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mydht_ring::{MemberState, NodeId, Ring};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Cluster;
use crate::detector::{Detector, DetectorConfig};
use crate::net::Datagrams;
use crate::view::{Change, View};

/// How often a node that knows no live member announces itself again.
const REANNOUNCE: Duration = Duration::from_secs(1);
/// The largest datagram taken.
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams read in a row before due timers get their turn, so a flood
/// of packets cannot stop probing.
const BURST: u32 = 64;

impl Cluster {
    /// Runs the failure detector on `socket` until `stop` is cancelled.
    pub async fn run_detector(
        self,
        socket: Arc<dyn Datagrams>,
        cfg: DetectorConfig,
        stop: CancellationToken,
    ) {
        let origin = Instant::now();
        let now = move || origin.elapsed();
        let me = self.me().clone();
        // A restart is a new incarnation that wins over the old one.
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let seed = incarnation ^ crate::start_turn(&me) as u64;
        let mut ring_rx = self.watch_ring();
        let mut ring = ring_rx.borrow_and_update().clone();
        let mut detector = Detector::new(me.clone(), incarnation, cfg, members(&ring), seed);
        if let Some(mine) = ring.member(&me) {
            detector.publish(mine);
        }
        for node in self.others() {
            detector.announce(&node, now());
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut burst = 0;
        let mut reannounce = tokio::time::interval(REANNOUNCE);
        reannounce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            send(&mut detector, &*socket).await;
            self.absorb(&mut detector, &ring).await;
            let next = detector.next_due().map(|d| origin + d);
            if burst >= BURST {
                burst = 0;
                detector.tick(now());
                continue;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => {
                    detector.leave(now());
                    send(&mut detector, &*socket).await;
                    return;
                }
                // Datagrams before timers: after a pause, the refutation
                // of a suspicion waiting in the socket buffer must be read
                // before the suspicion's timer fires.
                got = socket.recv(&mut buf) => {
                    burst += 1;
                    match got {
                        Ok(n) => detector.receive(&buf[..n], now()),
                        Err(e) => tracing::trace!(error = %e, "datagram not received"),
                    }
                }
                () = sleep_until(next), if next.is_some() => {
                    burst = 0;
                    detector.tick(now());
                }
                changed = ring_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let new = ring_rx.borrow_and_update().clone();
                    publish_changes(&mut detector, &ring, &new);
                    detector.resize(members(&new));
                    ring = new;
                    self.0.liveness.set_detected(detected(&detector, &ring, &me));
                }
                _ = reannounce.tick() => {
                    if detector.is_idle() {
                        for node in self.others() {
                            detector.announce(&node, now());
                        }
                    }
                }
            }
        }
    }

    /// Merges the ring entries the detector heard, and tells liveness whom
    /// it declares down.
    async fn absorb(&self, detector: &mut Detector, ring: &Ring) {
        let heard = detector.drain_heard();
        if !heard.is_empty() {
            let view = View::new(ring.params(), ring.params_version(), heard);
            match self.apply(&Change::Gossip { view }).await {
                Ok(a) if a.changed => tracing::info!(
                    epoch = a.after.epoch(),
                    version = %a.after.version(),
                    "ring changed by piggybacked gossip"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "piggybacked ring entries refused"),
            }
        }
        if detector.take_changed() {
            self.0
                .liveness
                .set_detected(detected(detector, ring, self.me()));
        }
    }
}

/// Members in the ring (not removed), this node included.
fn members(ring: &Ring) -> usize {
    ring.members()
        .iter()
        .filter(|m| m.state() != MemberState::Removed)
        .count()
}

/// The ring's members the detector declares down.
fn detected(detector: &Detector, ring: &Ring, me: &NodeId) -> BTreeSet<NodeId> {
    detector
        .declared_down()
        .into_iter()
        .filter(|n| {
            n != me
                && ring
                    .member(n)
                    .is_some_and(|m| m.state() != MemberState::Removed)
        })
        .collect()
}

/// Publishes every entry of `new` that `old` did not hold.
fn publish_changes(detector: &mut Detector, old: &Ring, new: &Ring) {
    for m in new.members() {
        if old.member(m.id()) != Some(m) {
            detector.publish(m);
        }
    }
}

async fn send(detector: &mut Detector, socket: &dyn Datagrams) {
    for (to, packet) in detector.drain_outbox() {
        if let Err(e) = socket.send_to(to.as_str(), &packet).await {
            tracing::trace!(%to, error = %e, "datagram not sent");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
