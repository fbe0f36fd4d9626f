//! Shard discovery and lineage: which shards get a lease, where a new lease
//! starts reading, which shards may be read now (a child only once its
//! parent is finished), and which shards vanished before they were read to
//! the end (records lost to the stream's retention).
//!
//! Everything here is pure, over a DescribeStream shard list and the lease
//! table's rows, so the rules are tested on synthetic shard trees.

use std::collections::{HashMap, HashSet};

use super::config::StartPosition;
use super::leases::{Lease, Position};
use super::streams::StreamShape;

/// A lease to create for a newly seen shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLease {
    /// The shard.
    pub shard_id: String,
    /// Its parent, if any.
    pub parent: Option<String>,
    /// Where reading starts.
    pub position: Position,
}

/// Leases to create for shards that have none, parents before children.
///
/// A shard whose parent already had a lease before this call descends from
/// something this pipeline reads, so it starts at the trim horizon (nothing
/// written to it may be missed). Every other shard starts at the configured
/// position; with `latest`, a closed shard without a tracked parent is
/// marked finished at once (nothing new will ever arrive in it), so only
/// the open shards are read, from now on.
pub fn new_leases(
    shape: &StreamShape,
    existing: &HashMap<String, Lease>,
    start: StartPosition,
) -> Vec<NewLease> {
    let mut out = Vec::new();
    let mut done: HashSet<&str> = existing.keys().map(String::as_str).collect();
    let by_id: HashMap<&str, &super::streams::ShardInfo> =
        shape.shards.iter().map(|s| (s.id.as_str(), s)).collect();
    // Repeatedly emit shards whose parent is handled (or not in the list).
    let mut pending: Vec<&super::streams::ShardInfo> = shape
        .shards
        .iter()
        .filter(|s| !existing.contains_key(&s.id))
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|s| {
            let parent_ready = match &s.parent {
                Some(p) => done.contains(p.as_str()) || !by_id.contains_key(p.as_str()),
                None => true,
            };
            if !parent_ready {
                return true;
            }
            let tracked_parent = s.parent.as_ref().is_some_and(|p| existing.contains_key(p));
            let position = match (tracked_parent, start) {
                (true, _) | (false, StartPosition::TrimHorizon) => Position::TrimHorizon,
                (false, StartPosition::Latest) if s.closed => Position::ShardEnd,
                (false, StartPosition::Latest) => Position::Latest,
            };
            out.push(NewLease {
                shard_id: s.id.clone(),
                parent: s.parent.clone(),
                position,
            });
            done.insert(s.id.as_str());
            false
        });
        if pending.len() == before {
            // A parent cycle cannot happen in a real stream; read them anyway.
            for s in pending.drain(..) {
                out.push(NewLease {
                    shard_id: s.id.clone(),
                    parent: s.parent.clone(),
                    position: Position::TrimHorizon,
                });
            }
        }
    }
    out
}

/// Whether a shard's parent is finished, so the shard may be read: it has
/// no parent, or the parent's lease is at the shard end, or the parent is
/// neither in the stream nor in the lease table (it was trimmed away
/// before this pipeline ever saw it).
pub fn parent_finished(
    lease: &Lease,
    leases: &HashMap<String, Lease>,
    shape_ids: &HashSet<&str>,
) -> bool {
    match &lease.parent {
        None => true,
        Some(p) => match leases.get(p) {
            Some(parent) => parent.position == Position::ShardEnd,
            None => !shape_ids.contains(p.as_str()),
        },
    }
}

/// Shards whose lease is not finished but which the stream no longer has:
/// their unread records were trimmed (24 h retention) before this pipeline
/// read them.
pub fn vanished_unfinished(shape: &StreamShape, leases: &HashMap<String, Lease>) -> Vec<String> {
    let ids: HashSet<&str> = shape.shards.iter().map(|s| s.id.as_str()).collect();
    let mut out: Vec<String> = leases
        .values()
        .filter(|l| l.position != Position::ShardEnd && !ids.contains(l.shard_id.as_str()))
        .map(|l| l.shard_id.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::dynamodb_streams::streams::ShardInfo;

    fn shard(id: &str, parent: Option<&str>, closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            closed,
        }
    }

    fn lease(id: &str, parent: Option<&str>, position: Position) -> Lease {
        Lease {
            shard_id: id.into(),
            parent: parent.map(Into::into),
            position,
            owner: None,
            counter: 0,
        }
    }

    fn shape(shards: Vec<ShardInfo>) -> StreamShape {
        StreamShape {
            stream_arn: "arn".into(),
            table_name: "t".into(),
            shards,
        }
    }

    #[test]
    fn new_leases_come_parents_first() {
        // c's parent b comes after it in the listing; a is b's parent.
        let s = shape(vec![
            shard("c", Some("b"), false),
            shard("b", Some("a"), true),
            shard("a", None, true),
        ]);
        let got = new_leases(&s, &HashMap::new(), StartPosition::TrimHorizon);
        let ids: Vec<&str> = got.iter().map(|l| l.shard_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(got.iter().all(|l| l.position == Position::TrimHorizon));
    }

    #[test]
    fn latest_skips_closed_roots_but_children_of_tracked_shards_start_at_the_horizon() {
        let s = shape(vec![shard("a", None, true), shard("b", Some("a"), false)]);
        let got = new_leases(&s, &HashMap::new(), StartPosition::Latest);
        assert_eq!(got[0].position, Position::ShardEnd);
        assert_eq!(got[1].position, Position::Latest);
        // Later, b splits into c: c descends from a tracked shard.
        let existing: HashMap<String, Lease> = [
            ("a".to_string(), lease("a", None, Position::ShardEnd)),
            (
                "b".to_string(),
                lease("b", Some("a"), Position::Sequence("5".into())),
            ),
        ]
        .into();
        let s = shape(vec![
            shard("a", None, true),
            shard("b", Some("a"), true),
            shard("c", Some("b"), false),
        ]);
        let got = new_leases(&s, &existing, StartPosition::Latest);
        assert_eq!(
            got,
            vec![NewLease {
                shard_id: "c".into(),
                parent: Some("b".into()),
                position: Position::TrimHorizon
            }]
        );
    }

    #[test]
    fn a_child_waits_for_its_parent() {
        let ids: HashSet<&str> = ["p", "c"].into();
        let child = lease("c", Some("p"), Position::TrimHorizon);
        let mut leases: HashMap<String, Lease> = [("c".to_string(), child.clone())].into();
        // Parent in the stream but without a lease yet: wait.
        assert!(!parent_finished(&child, &leases, &ids));
        leases.insert("p".into(), lease("p", None, Position::Sequence("9".into())));
        assert!(!parent_finished(&child, &leases, &ids));
        leases.insert("p".into(), lease("p", None, Position::ShardEnd));
        assert!(parent_finished(&child, &leases, &ids));
        // Parent trimmed before we ever saw it: nothing to wait for.
        let only_child: HashSet<&str> = ["c"].into();
        assert!(parent_finished(
            &child,
            &[("c".to_string(), child.clone())].into(),
            &only_child
        ));
    }

    #[test]
    fn vanished_unfinished_shards_are_reported() {
        let leases: HashMap<String, Lease> = [
            (
                "gone-done".to_string(),
                lease("gone-done", None, Position::ShardEnd),
            ),
            (
                "gone-open".to_string(),
                lease("gone-open", None, Position::Sequence("3".into())),
            ),
            (
                "here".to_string(),
                lease("here", None, Position::TrimHorizon),
            ),
        ]
        .into();
        let s = shape(vec![shard("here", None, false)]);
        assert_eq!(
            vanished_unfinished(&s, &leases),
            vec!["gone-open".to_string()]
        );
    }
}
