//! The client's own token bucket: every call of one configuration waits on it, and a 429 pauses
//! the whole bucket for the server's `Retry-After`.
//!
//! The bucket is kept as a schedule (GCRA, "virtual scheduling"): each caller takes the next slot
//! under a short lock and sleeps once until it. Callers are served in the order they asked, and
//! a request costs O(1) however many wait: no caller wakes up only to find the token taken.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

/// Rate and burst of a [`RateLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub requests_per_second: u32,
    /// Bucket capacity.
    pub burst: u32,
}

impl Default for RateLimit {
    /// Bitbucket Data Center's default per-user bucket: 5 per second, 60 at once.
    fn default() -> Self {
        Self { requests_per_second: 5, burst: 60 }
    }
}

/// The bucket as a schedule. Tickets number the reservations in the order they were made.
#[derive(Debug)]
struct Schedule {
    /// When the bucket would be full again if nobody took another token; reserved slots that
    /// have not come yet count as taken.
    full_at: Instant,
    /// The ticket the next reservation gets.
    next_ticket: u64,
    /// Slots still to come are `anchor_slot + (ticket − anchor_ticket) × interval`: once callers
    /// queue, their slots follow each other by one interval, so one point describes them all and
    /// a pause can move them all without knowing who waits.
    anchor_ticket: u64,
    anchor_slot: Instant,
    /// Tickets of callers dropped before their slot; the next caller that would wait longer
    /// takes the earliest one instead of letting it go unused.
    abandoned: BinaryHeap<Reverse<u64>>,
}

/// A token bucket shared by every request of one client.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between two tokens, rounded up to the nanosecond so that rounding never exceeds
    /// the rate.
    interval: Duration,
    /// How far ahead of the schedule a full bucket lets callers go: `burst − 1` intervals.
    tolerance: Duration,
    /// `burst` intervals: from empty to full.
    capacity: Duration,
    schedule: Mutex<Schedule>,
    /// Counts the pauses that moved slots already handed out; a waiter that sees it unchanged
    /// when its slot comes goes without taking the lock again.
    moves: AtomicU64,
}

impl RateLimiter {
    /// A full bucket. Rates and bursts of 0 are raised to 1.
    pub fn new(limit: RateLimit) -> Self {
        let nanos = 1_000_000_000_u64.div_ceil(u64::from(limit.requests_per_second.max(1)));
        let interval = Duration::from_nanos(nanos);
        let burst = limit.burst.max(1);
        let now = Instant::now();
        Self {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            capacity: interval.saturating_mul(burst),
            schedule: Mutex::new(Schedule {
                full_at: now,
                next_ticket: 0,
                anchor_ticket: 0,
                anchor_slot: now,
                abandoned: BinaryHeap::new(),
            }),
            moves: AtomicU64::new(0),
        }
    }

    /// Waits for a token; returns how long it waited.
    ///
    /// Dropped while waiting, the caller gives its slot to the next caller that would wait
    /// longer; if none comes before the slot, that one token is not handed out. So a dropped
    /// caller costs at most one token, and never lets the limiter exceed the rate.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        let (ticket, mut slot, mut moves) = {
            let mut schedule = self.lock();
            self.reserve(&mut schedule, started)
        };
        if slot <= started {
            return Duration::ZERO;
        }
        let mut waiter = Waiter { limiter: self, ticket, slot, done: false };
        loop {
            tokio::time::sleep_until(slot).await;
            let now = self.moves.load(Ordering::Acquire);
            if now == moves {
                break;
            }
            // A pause moved the queue while this caller slept: its slot may be later now.
            moves = now;
            match self.slot_of(&self.lock(), ticket) {
                Some(later) if later > slot => slot = later,
                _ => break,
            }
            waiter.slot = slot;
        }
        waiter.done = true;
        started.elapsed()
    }

    /// Stops handing out tokens for `duration` (a 429's Retry-After) and empties the bucket, so
    /// the requests after the pause start slowly instead of in a burst. Callers already waiting
    /// keep their order and come after the pause, one interval apart.
    pub async fn pause(&self, duration: Duration) {
        let now = Instant::now();
        let until = later_by(now, duration);
        let mut schedule = self.lock();
        // The first ticket whose slot is still to come at `now`.
        let first = if schedule.anchor_slot > now {
            schedule.anchor_ticket
        } else {
            let passed = now.duration_since(schedule.anchor_slot).as_nanos() / self.interval.as_nanos().max(1);
            schedule.anchor_ticket.saturating_add(u64::try_from(passed).unwrap_or(u64::MAX)).saturating_add(1)
        };
        if let Some(slot) = self.slot_of(&schedule, first).filter(|_| first < schedule.next_ticket) {
            // Callers wait: the first of them goes one interval after the pause (as from an empty
            // bucket), the others follow it.
            let restart = later_by(until, self.interval);
            if restart > slot {
                let shift = restart - slot;
                schedule.anchor_ticket = first;
                schedule.anchor_slot = restart;
                schedule.full_at = later_by(schedule.full_at, shift);
                self.moves.fetch_add(1, Ordering::AcqRel);
            }
        }
        // Empty at `until` at the latest; a shorter pause never shortens a longer one.
        schedule.full_at = schedule.full_at.max(later_by(until, self.capacity));
    }

    fn lock(&self) -> MutexGuard<'_, Schedule> {
        // Nothing panics while holding it; a poisoned schedule is still a valid one.
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next slot at `now`: a ticket, its slot and the pause count it was computed at.
    fn reserve(&self, schedule: &mut Schedule, now: Instant) -> (u64, Instant, u64) {
        let moves = self.moves.load(Ordering::Acquire);
        let ahead = schedule.full_at.saturating_duration_since(now);
        if ahead > self.tolerance {
            // The bucket is empty: reuse the earliest slot a dropped caller left, if still to come.
            while let Some(&Reverse(ticket)) = schedule.abandoned.peek() {
                schedule.abandoned.pop();
                if let Some(slot) = self.slot_of(schedule, ticket).filter(|slot| *slot > now) {
                    return (ticket, slot, moves);
                }
            }
        }
        let slot = later_by(now, ahead.saturating_sub(self.tolerance));
        schedule.full_at = later_by(schedule.full_at.max(now), self.interval);
        let ticket = schedule.next_ticket;
        schedule.next_ticket += 1;
        if slot > now && self.slot_of(schedule, ticket) != Some(slot) {
            // The first caller of a new queue.
            schedule.anchor_ticket = ticket;
            schedule.anchor_slot = slot;
        }
        (ticket, slot, moves)
    }

    /// The slot of a ticket that is queued; `None` for tickets before the queue (already due).
    fn slot_of(&self, schedule: &Schedule, ticket: u64) -> Option<Instant> {
        let behind = ticket.checked_sub(schedule.anchor_ticket)?;
        let offset = u32::try_from(behind).map_or(Duration::MAX, |n| self.interval.saturating_mul(n));
        Some(later_by(schedule.anchor_slot, offset))
    }
}

/// `instant + duration`, or a far future instead of overflowing.
fn later_by(instant: Instant, duration: Duration) -> Instant {
    instant.checked_add(duration).unwrap_or_else(|| far_future(instant))
}

fn far_future(instant: Instant) -> Instant {
    // About thirty years: further than any wait, and representable on every platform.
    instant.checked_add(Duration::from_secs(86_400 * 365 * 30)).unwrap_or(instant)
}

/// A caller between its reservation and its slot; dropped early, it hands the slot back.
struct Waiter<'a> {
    limiter: &'a RateLimiter,
    ticket: u64,
    slot: Instant,
    done: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.done || self.slot <= Instant::now() {
            return;
        }
        // Bounded: one entry per caller dropped before its slot, taken by the next caller
        // that would wait or discarded once its slot has passed.
        self.limiter.lock().abandoned.push(Reverse(self.ticket));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn limiter(requests_per_second: u32, burst: u32) -> Arc<RateLimiter> {
        Arc::new(RateLimiter::new(RateLimit { requests_per_second, burst }))
    }

    /// Starts `n` callers in this order, each reserving before the next starts; they report
    /// their index and the time since `start` when their token comes.
    async fn queue(
        limiter: &Arc<RateLimiter>,
        n: usize,
        start: Instant,
    ) -> (Vec<tokio::task::JoinHandle<()>>, tokio::sync::mpsc::UnboundedReceiver<(usize, Duration)>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..n {
            let limiter = Arc::clone(limiter);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await;
                let _ = tx.send((i, start.elapsed()));
            }));
            // Lets the task reach its reservation before the next one starts.
            tokio::task::yield_now().await;
        }
        (tasks, rx)
    }

    async fn collect(mut rx: tokio::sync::mpsc::UnboundedReceiver<(usize, Duration)>) -> Vec<(usize, Duration)> {
        let mut out = Vec::new();
        while let Some(item) = rx.recv().await {
            out.push(item);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let limiter = limiter(10, 5);
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.acquire().await, Duration::ZERO, "the burst is free");
        }
        assert!(start.elapsed() < Duration::from_millis(1), "the burst is free");
        let mut waited = Duration::ZERO;
        for _ in 0..10 {
            waited += limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(990) && elapsed < Duration::from_millis(1100), "{elapsed:?}");
        assert!(waited >= Duration::from_millis(990), "acquire reports its waits: {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_fills_up_again() {
        let limiter = limiter(10, 5);
        for _ in 0..8 {
            limiter.acquire().await;
        }
        // Ten seconds refill far more than the bucket holds: it is full, no more.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        let waited = limiter.acquire().await;
        assert!(waited >= Duration::from_millis(99), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_the_order_they_came() {
        let limiter = limiter(10, 1);
        let start = Instant::now();
        let (tasks, rx) = queue(&limiter, 20, start).await;
        drop(tasks);
        let served = collect(rx).await;
        let order: Vec<usize> = served.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        for (i, at) in &served {
            let due = Duration::from_millis(100) * u32::try_from(*i).unwrap();
            assert!(*at >= due && *at < due + Duration::from_millis(5), "caller {i} at {at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let limiter = limiter(100, 100);
        limiter.pause(Duration::from_secs(5)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(5));
        // A shorter pause never shortens a longer one.
        limiter.pause(Duration::from_secs(3)).await;
        limiter.pause(Duration::from_secs(1)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        // And it restarts slowly: no burst after a pause, even after a shorter pause.
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(99), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_moves_callers_already_waiting() {
        let limiter = limiter(10, 1);
        let start = Instant::now();
        // Slots at 0, 100, 200 ... 900 ms.
        let (_tasks, rx) = queue(&limiter, 10, start).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        limiter.pause(Duration::from_secs(2)).await;
        let served = collect(rx).await;
        let order: Vec<usize> = served.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>(), "the queue keeps its order");
        for (i, at) in &served {
            if *i <= 2 {
                assert!(*at < Duration::from_millis(250), "caller {i} was served before the pause: {at:?}");
            } else {
                // The first after the pause goes one interval after it, the others follow.
                let due = Duration::from_millis(2350) + Duration::from_millis(100) * u32::try_from(i - 3).unwrap();
                assert!(*at >= due && *at < due + Duration::from_millis(5), "caller {i} at {at:?}");
            }
        }
        // A newcomer queues behind them.
        let waited = limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(3050), "{:?} after waiting {waited:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_leaves_its_slot_to_the_next() {
        let limiter = limiter(10, 1);
        let start = Instant::now();
        // Slots at 0, 100 and 200 ms; the second caller gives up.
        let (mut tasks, rx) = queue(&limiter, 3, start).await;
        let dropped = tasks.remove(1);
        dropped.abort();
        assert!(dropped.await.is_err_and(|e| e.is_cancelled()));
        // The next caller takes the slot at 100 ms instead of waiting until 300 ms.
        let waited = limiter.acquire().await;
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(105), "{waited:?}");
        let served = collect(rx).await;
        assert_eq!(served.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
        assert!(served[1].1 >= Duration::from_millis(200) && served[1].1 < Duration::from_millis(205), "{served:?}");

        // A slot nobody took in time is not handed out late: that would exceed the rate.
        let (mut tasks, _rx) = queue(&limiter, 1, start).await;
        let dropped = tasks.remove(0);
        dropped.abort();
        assert!(dropped.await.is_err_and(|e| e.is_cancelled()));
        tokio::time::sleep_until(start + Duration::from_millis(350)).await;
        let waited = limiter.acquire().await;
        assert!(waited >= Duration::from_millis(50) && waited < Duration::from_millis(55), "{waited:?}");
        assert!(limiter.lock().abandoned.is_empty(), "passed slots are forgotten");
    }

    /// What a run of the property test does at one step.
    #[derive(Clone, Debug)]
    enum Step {
        /// Starts callers after a gap.
        Call { gap_ms: u64, callers: usize },
        /// Drops the oldest caller still waiting, if any.
        Drop,
        /// A 429's Retry-After.
        Pause { ms: u64 },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0..400_u64, 1..8_usize).prop_map(|(gap_ms, callers)| Step::Call { gap_ms, callers }),
            1 => Just(Step::Drop),
            1 => (1..1500_u64).prop_map(|ms| Step::Pause { ms }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Over any window of t seconds, at most burst + rate × t tokens are handed out, whoever
        /// waits, gives up or pauses. (Rates whose interval is whole milliseconds, the timer's
        /// resolution, so that wake-ups are exactly on the slots.)
        #[test]
        fn never_more_than_burst_plus_rate(
            rate in proptest::sample::select(vec![1_u32, 2, 4, 5, 10, 20, 50, 100, 250, 1000]),
            burst in 1..20_u32,
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            let granted = runtime.block_on(async {
                let limiter = limiter(rate, burst);
                let granted = Arc::new(Mutex::new(Vec::new()));
                let mut waiting = std::collections::VecDeque::new();
                for step in steps {
                    match step {
                        Step::Call { gap_ms, callers } => {
                            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
                            for _ in 0..callers {
                                let limiter = Arc::clone(&limiter);
                                let granted = Arc::clone(&granted);
                                waiting.push_back(tokio::spawn(async move {
                                    limiter.acquire().await;
                                    granted.lock().unwrap().push(Instant::now());
                                }));
                                tokio::task::yield_now().await;
                            }
                        }
                        Step::Drop => {
                            while let Some(task) = waiting.pop_front() {
                                if !task.is_finished() {
                                    task.abort();
                                    break;
                                }
                            }
                        }
                        Step::Pause { ms } => limiter.pause(Duration::from_millis(ms)).await,
                    }
                }
                for task in waiting {
                    let _ = task.await;
                }
                // Aborted tasks may still hold their handle of the list: read it, do not take it.
                granted.lock().unwrap().clone()
            });
            let interval = Duration::from_millis(1000 / u64::from(rate));
            for (i, first) in granted.iter().enumerate() {
                for (j, last) in granted.iter().enumerate().skip(i) {
                    // Tokens i..=j in a window of `last − first`.
                    let allowed = u128::from(burst) + (*last - *first).as_nanos() / interval.as_nanos();
                    proptest::prop_assert!((j - i + 1) as u128 <= allowed, "tokens {i}..={j} in {:?}", *last - *first);
                }
            }
        }
    }
}
