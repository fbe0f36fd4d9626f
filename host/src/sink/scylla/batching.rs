//! Grouping bound writes into requests: by partition (first-seen order),
//! then into bounded UNLOGGED batches run one after another, so writes to
//! one partition keep their order. A row written twice goes into a later
//! batch than its first write: statements of one batch share a write time,
//! so the server could not tell which came last.

use std::collections::{HashMap, HashSet};

use super::config::ScyllaBatchConfig;
use super::mapping::BoundWrite;

/// One request: the writes of one partition that go out together, with
/// each write's index in the slice given to `Sink::write`.
pub type Chunk = Vec<(usize, BoundWrite)>;

/// Partitions (in order of first appearance), each a sequence of chunks.
pub fn group(writes: Vec<(usize, BoundWrite)>, limits: ScyllaBatchConfig) -> Vec<Vec<Chunk>> {
    let mut order: Vec<Vec<(usize, BoundWrite)>> = Vec::new();
    let mut by_partition: HashMap<String, usize> = HashMap::new();
    for (i, w) in writes {
        let slot = *by_partition.entry(w.partition.clone()).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[slot].push((i, w));
    }
    let max_statements = limits.max_statements.max(1);
    order
        .into_iter()
        .map(|writes| {
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut current: Chunk = Vec::new();
            let mut rows: HashSet<String> = HashSet::new();
            let mut bytes = 0_usize;
            for (i, w) in writes {
                let full = !current.is_empty()
                    && (current.len() >= max_statements
                        || bytes + w.size > limits.max_bytes
                        || rows.contains(&w.row));
                if full {
                    chunks.push(std::mem::take(&mut current));
                    rows.clear();
                    bytes = 0;
                }
                bytes += w.size;
                rows.insert(w.row.clone());
                current.push((i, w));
            }
            if !current.is_empty() {
                chunks.push(current);
            }
            chunks
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::mapping::StatementKind;
    use super::*;

    fn w(partition: &str, row: &str, size: usize) -> BoundWrite {
        BoundWrite {
            kind: StatementKind::Insert,
            values: Vec::new(),
            partition: partition.into(),
            row: row.into(),
            size,
        }
    }

    fn shape(groups: &[Vec<Chunk>]) -> Vec<Vec<Vec<usize>>> {
        groups
            .iter()
            .map(|p| {
                p.iter()
                    .map(|c| c.iter().map(|(i, _)| *i).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn groups_by_partition_and_bounds_batches() {
        let limits = ScyllaBatchConfig {
            max_statements: 2,
            max_bytes: 100,
        };
        let writes = vec![
            (0, w("a", "a1", 10)),
            (1, w("b", "b1", 10)),
            (2, w("a", "a2", 10)),
            (3, w("a", "a3", 10)),
            (4, w("b", "b2", 95)),
        ];
        assert_eq!(
            shape(&group(writes, limits)),
            vec![vec![vec![0, 2], vec![3]], vec![vec![1], vec![4]]]
        );
    }

    #[test]
    fn a_repeated_row_starts_a_new_batch() {
        let limits = ScyllaBatchConfig::default();
        let writes = vec![
            (0, w("a", "a1", 1)),
            (1, w("a", "a2", 1)),
            (2, w("a", "a1", 1)),
        ];
        assert_eq!(
            shape(&group(writes, limits)),
            vec![vec![vec![0, 1], vec![2]]]
        );
    }
}
