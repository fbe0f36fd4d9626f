//! The concurrency limit of one store: at most `max_concurrent_calls`
//! round trips at once, from every plugin worker of every pipeline that
//! reads the store. A call waits for a slot no longer than its own
//! timeout, and the wait counts against it.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The slots of one store.
#[derive(Debug)]
pub struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// A slot held; dropped, it is free again.
#[derive(Debug)]
pub struct Slot<'a>(&'a Slots);

impl Slots {
    /// `max` slots (at least one).
    pub fn new(max: usize) -> Slots {
        Slots {
            used: Mutex::new(0),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    /// A slot, waiting at most `wait` for one.
    pub fn acquire(&self, wait: Duration) -> Option<Slot<'_>> {
        let deadline = Instant::now() + wait;
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used >= self.max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            used = self
                .freed
                .wait_timeout(used, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *used += 1;
        Some(Slot(self))
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(PoisonError::into_inner);
        *used = used.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_makes_a_call_wait_until_a_slot_is_free_or_its_time_is_up() {
        let slots = Slots::new(1);
        let held = slots.acquire(Duration::ZERO).expect("a free slot");
        assert!(slots.acquire(Duration::from_millis(20)).is_none());
        std::thread::scope(|s| {
            let waiter = s.spawn(|| slots.acquire(Duration::from_secs(10)).is_some());
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            assert!(waiter.join().unwrap(), "freed slot taken by the waiter");
        });
    }
}
