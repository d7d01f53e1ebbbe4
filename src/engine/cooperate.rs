//! Long decision work (a large batch, a list over a big subtree) hands the
//! thread back to the runtime every [`Cooperate::SLICE`], so that deadlines
//! fire, health checks are answered and other tenants' calls run in between.
//! Runtime-agnostic: a yield is one `Pending` with an immediate wake.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Tracks how long the current task has run since it last yielded.
#[derive(Debug)]
pub struct Cooperate {
    since: Instant,
}

impl Default for Cooperate {
    fn default() -> Self {
        Self::new()
    }
}

impl Cooperate {
    /// Longest stretch of decision work between two yields.
    pub const SLICE: Duration = Duration::from_micros(100);

    /// Starts counting now.
    pub fn new() -> Self {
        Self {
            since: Instant::now(),
        }
    }

    /// Call between two units of work: yields once the slice is used up.
    pub async fn tick(&mut self) {
        if self.since.elapsed() >= Self::SLICE {
            YieldNow(false).await;
            self.since = Instant::now();
        }
    }
}

/// Ready on the second poll; the first wakes the task and returns `Pending`,
/// which puts it at the back of the run queue.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// On a single thread, a task that spins through `tick` lets another
    /// task run and a timeout around it fire.
    #[tokio::test(flavor = "current_thread")]
    async fn busy_work_lets_others_run_and_deadlines_fire() {
        let other_ran = Arc::new(AtomicBool::new(false));
        let flag = other_ran.clone();
        let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        let spin = async {
            let mut c = Cooperate::new();
            loop {
                std::hint::black_box(0u64);
                c.tick().await;
            }
        };
        let timed = tokio::time::timeout(Duration::from_millis(20), spin).await;
        assert!(timed.is_err(), "the deadline fired");
        other.await.unwrap();
        assert!(other_ran.load(Ordering::SeqCst));
    }
}
