//! Commits by watermark, per partition or shard.
//!
//! Workers finish batches out of order, so a batch's checkpoint cannot be
//! committed when the batch is done: an earlier batch of the same
//! partition may still be running. Each partition keeps its *units* (the
//! part of one read batch that is of that partition, with that part's
//! checkpoint) in the order they were read; a unit is done when every piece
//! it was split into (one per worker it went to) is written or
//! dead-lettered. A partition commits the checkpoint of the last unit of
//! its longest done prefix: everything up to it is acknowledged, and
//! nothing after its first unfinished unit is ever committed.
//!
//! Done units behind an unfinished one are merged (the later checkpoint of
//! a partition covers the earlier), so a queue holds at most two units per
//! unfinished one, however long a slow worker keeps a partition back.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::source::PendingCommit;

/// One read batch's part of one partition, as a piece refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnitId {
    /// The partition's name ([`crate::source::Checkpoint::split`]).
    pub partition: Arc<str>,
    /// Read order, across all partitions.
    seq: u64,
}

#[derive(Debug)]
struct Unit {
    seq: u64,
    /// Pieces not yet done.
    pending: usize,
    /// `None` for a part the source gave no checkpoint for.
    checkpoint: Option<PendingCommit>,
}

/// The units of every partition not yet committed.
#[derive(Debug, Default)]
pub(super) struct Watermarks {
    queues: HashMap<Arc<str>, VecDeque<Unit>>,
    next: u64,
}

impl Watermarks {
    /// A new unit of `partition`, split into `pieces` (at least one) that
    /// each report [`Watermarks::done`] once.
    pub(super) fn register(
        &mut self,
        partition: Arc<str>,
        pieces: usize,
        checkpoint: Option<PendingCommit>,
    ) -> UnitId {
        let seq = self.next;
        self.next += 1;
        self.queues
            .entry(Arc::clone(&partition))
            .or_default()
            .push_back(Unit {
                seq,
                pending: pieces.max(1),
                checkpoint,
            });
        UnitId { partition, seq }
    }

    /// One piece of `unit` is done: the checkpoint the partition may now
    /// commit, if its watermark moved.
    pub(super) fn done(&mut self, unit: &UnitId) -> Option<PendingCommit> {
        let queue = self.queues.get_mut(&unit.partition)?;
        let mut at = queue.binary_search_by_key(&unit.seq, |u| u.seq).ok()?;
        let entry = &mut queue[at];
        entry.pending = entry.pending.saturating_sub(1);
        if entry.pending > 0 {
            return None;
        }
        // Merge with done neighbours: the later checkpoint covers both.
        if at > 0 && queue[at - 1].pending == 0 {
            let earlier = queue.remove(at - 1);
            at -= 1;
            if let Some(earlier) = earlier
                && queue[at].checkpoint.is_none()
            {
                queue[at].checkpoint = earlier.checkpoint;
            }
        }
        if queue.get(at + 1).is_some_and(|u| u.pending == 0)
            && let Some(earlier) = queue.remove(at)
            && queue[at].checkpoint.is_none()
        {
            queue[at].checkpoint = earlier.checkpoint;
        }
        let mut commit = None;
        while queue.front().is_some_and(|u| u.pending == 0) {
            if let Some(u) = queue.pop_front()
                && u.checkpoint.is_some()
            {
                commit = u.checkpoint;
            }
        }
        if queue.is_empty() {
            self.queues.remove(&unit.partition);
        }
        commit
    }

    /// Units not yet committed, over all partitions.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}
