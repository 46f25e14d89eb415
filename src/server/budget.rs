//! A listener's connection budget, which idle connections cannot exhaust.
//!
//! Each kind of listener (TCP, the Unix socket) has its own budget, so a flood on one never shuts out the
//! other. When a budget is full and a new client connects, the connection idle the longest — no request
//! in progress, preferring those that never sent a request, then the one whose last activity is oldest —
//! is closed to make room, as web servers close idle keep-alive connections under pressure. Only when
//! every connection is busy with a request does a new client wait for one to end. So a flood of idle
//! connections delays a new client by the time it takes to close one, not by the header timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// One listener's budget.
#[derive(Debug)]
pub(crate) struct Budget {
    capacity: usize,
    epoch: Instant,
    open: Mutex<Open>,
    /// Signalled whenever a connection gives its place back.
    freed: Notify,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Tracked>>,
}

/// What the budget knows of one open connection.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    requests: AtomicU64,
    in_flight: AtomicU32,
    /// Milliseconds since the budget's epoch of the last request that started or ended (or the accept).
    last_active: AtomicU64,
    closing: AtomicBool,
    close: Notify,
}

/// A connection's place in its budget, given back on drop.
#[derive(Debug)]
pub(crate) struct Place {
    budget: Arc<Budget>,
    id: u64,
    tracked: Arc<Tracked>,
}

impl Budget {
    /// A budget of `capacity` connections (at least one).
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Budget {
            capacity: capacity.max(1),
            epoch: Instant::now(),
            open: Mutex::default(),
            freed: Notify::new(),
        })
    }

    /// Milliseconds on the budget's clock, for [`Tracked`]'s reports.
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a connection just accepted: at once when there is room; else after closing the
    /// connection idle the longest (`true` in the answer); else when a busy one ends.
    pub(crate) async fn admit(self: &Arc<Self>) -> (Place, bool) {
        let mut evicted = false;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so that a place given back meanwhile is not missed.
            freed.as_mut().enable();
            {
                let mut open = self.lock();
                if open.connections.len() < self.capacity {
                    let id = open.next_id;
                    open.next_id += 1;
                    let tracked = Arc::new(Tracked::default());
                    tracked.last_active.store(self.now(), Ordering::Relaxed);
                    open.connections.insert(id, tracked.clone());
                    return (Place { budget: self.clone(), id, tracked }, evicted);
                }
                let idlest = open
                    .connections
                    .values()
                    .filter(|c| c.in_flight.load(Ordering::Relaxed) == 0 && !c.closing.load(Ordering::Relaxed))
                    .min_by_key(|c| (c.requests.load(Ordering::Relaxed) > 0, c.last_active.load(Ordering::Relaxed)));
                if let Some(idlest) = idlest {
                    idlest.closing.store(true, Ordering::Relaxed);
                    idlest.close.notify_one();
                    evicted = true;
                }
            }
            freed.await;
        }
    }
}

impl Place {
    /// The connection's record, to report requests and to learn when it must close.
    pub(crate) fn tracked(&self) -> &Arc<Tracked> {
        &self.tracked
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.budget.lock().connections.remove(&self.id);
        self.budget.freed.notify_waiters();
    }
}

impl Tracked {
    /// A request starts on the connection: it is not idle until the request ends.
    pub(crate) fn request_started(&self, budget_now: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.last_active.store(budget_now, Ordering::Relaxed);
    }

    /// The request's handler is done (its answer is being written).
    pub(crate) fn request_ended(&self, budget_now: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.last_active.store(budget_now, Ordering::Relaxed);
    }

    /// Completes when the budget wants this connection closed to make room.
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_budget_closes_the_idlest_connection_and_never_a_busy_one() {
        let budget = Budget::new(3);
        let (busy, _) = budget.admit().await;
        let (served, _) = budget.admit().await;
        let (silent, _) = budget.admit().await;
        busy.tracked().request_started(budget.now());
        served.tracked().request_started(budget.now());
        served.tracked().request_ended(budget.now());
        // Full: the one that never asked anything goes first, then the idle one, never the busy one.
        let admitted = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit().await }
        });
        tokio::time::timeout(Duration::from_secs(1), silent.tracked().closed()).await.unwrap();
        drop(silent);
        let (fourth, evicted) = admitted.await.unwrap();
        assert!(evicted);
        // Among connections that have asked something, the one idle longer goes first.
        std::thread::sleep(Duration::from_millis(5));
        fourth.tracked().request_started(budget.now());
        fourth.tracked().request_ended(budget.now());
        let admitted = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit().await }
        });
        tokio::time::timeout(Duration::from_secs(1), served.tracked().closed()).await.unwrap();
        drop(served);
        let (_fifth, _) = admitted.await.unwrap();
        // Now the busy one and two new ones that never asked: a sixth waits for a place to be given back.
        let sixth = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit().await }
        });
        tokio::task::yield_now().await;
        drop(fourth);
        let (_, _) = tokio::time::timeout(Duration::from_secs(1), sixth).await.unwrap().unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), busy.tracked().closed()).await.is_err());
    }
}
