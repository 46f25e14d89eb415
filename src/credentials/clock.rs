//! The time source of the credential cache, injectable so that tests move time instead of sleeping;
//! and [`CoarseClock`], the cache's default, which makes reading the time on a hit one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tells the cache what time it is. Wall-clock time, because STS expirations are wall-clock times.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in whole milliseconds since the Unix epoch (0 before the epoch). The cache
    /// reads the time only through this, once per lookup, so a clock may answer it more cheaply than
    /// through [`now`](Clock::now); by default it is `now` truncated to the millisecond.
    fn now_millis(&self) -> u64 {
        millis(self.now())
    }
}

/// Whole milliseconds since the Unix epoch; 0 before it, `u64::MAX` some 584 million years after.
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, duration_millis)
}

/// Whole milliseconds in `duration`, saturating.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    // Seconds and milliseconds apart: `as_millis` would divide a `u128`.
    duration.as_secs().saturating_mul(1000).saturating_add(u64::from(duration.subsec_millis()))
}

/// The system's clock in milliseconds, read from a value that a background thread refreshes every
/// [`CoarseClock::TICK`] (10 ms): reading it is one atomic load instead of a system clock call. The default
/// clock of [`CredentialCache::new`](super::CredentialCache::new).
///
/// **Staleness.** It is never ahead of the system clock, and it lags it by at most one tick plus however
/// long the operating system delays the ticker thread: about 10 ms on an idle machine, tens of
/// milliseconds more on an overloaded one. The cache's margins are whole seconds to minutes (credentials are
/// refreshed minutes before they expire and served stale only while at least `stale_min_remaining`, 60 s
/// by default, is left), so such a lag is harmless; with a `stale_min_remaining` of zero the cache may
/// serve credentials up to the lag past their expiry.
///
/// **The ticker.** One thread serves the whole process: the first `CoarseClock` starts it, clones and
/// later clocks share it, and it stops within a tick of the last clock being dropped (it holds only a
/// weak reference), so creating and dropping many caches leaves no thread behind. A thread rather than a
/// tokio task, because the cache also works without a runtime, and a task would stop ticking while its
/// runtime is blocked or after it shuts down. If the thread cannot be started, the clock falls back to
/// reading the system clock on every call.
#[derive(Debug, Clone)]
pub struct CoarseClock {
    ticker: Option<Arc<Ticker>>,
}

/// The shared time, alone in its cache line: every core reads it, and the ticker writes it.
#[derive(Debug)]
#[repr(align(64))]
struct Ticker {
    millis: AtomicU64,
}

/// The running ticker, if any clock holds it.
static TICKER: Mutex<Weak<Ticker>> = Mutex::new(Weak::new());

impl CoarseClock {
    /// How often the ticker refreshes the time: 100 wake-ups a second while any clock exists, where the
    /// cache's margins are seconds to minutes.
    pub const TICK: Duration = Duration::from_millis(10);

    /// A clock on the process's ticker, started if no other clock holds it.
    pub fn new() -> Self {
        let mut running = TICKER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ticker) = running.upgrade() {
            return CoarseClock { ticker: Some(ticker) };
        }
        let ticker = Arc::new(Ticker { millis: AtomicU64::new(millis(SystemTime::now())) });
        let weak = Arc::downgrade(&ticker);
        let started = std::thread::Builder::new().name("rolemap-clock".to_owned()).spawn(move || {
            while let Some(ticker) = weak.upgrade() {
                ticker.millis.store(millis(SystemTime::now()), Ordering::Relaxed);
                drop(ticker);
                std::thread::sleep(Self::TICK);
            }
        });
        match started {
            Ok(_) => {
                *running = Arc::downgrade(&ticker);
                CoarseClock { ticker: Some(ticker) }
            }
            Err(_) => CoarseClock { ticker: None },
        }
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        CoarseClock::new()
    }
}

impl Clock for CoarseClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_millis())
    }

    fn now_millis(&self) -> u64 {
        match &self.ticker {
            Some(ticker) => ticker.millis.load(Ordering::Relaxed),
            None => millis(SystemTime::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_follows_the_system_clock_from_behind() {
        let clock = CoarseClock::new();
        for _ in 0..20 {
            let before = millis(SystemTime::now());
            let coarse = clock.now_millis();
            let after = millis(SystemTime::now());
            // Behind by the tick plus scheduling delay; a second is far beyond either, even on a busy machine.
            assert!(coarse <= after && coarse + 1_000 >= before, "{before} <= {coarse} <= {after}");
            let whole = clock.now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() % 1_000_000).ok();
            assert_eq!(whole, Some(0), "`now` is the same millisecond count as a time");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn milliseconds_are_truncated_and_saturate() {
        assert_eq!(millis(UNIX_EPOCH + Duration::from_micros(2_999)), 2);
        assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(duration_millis(Duration::MAX), u64::MAX);
    }
}
