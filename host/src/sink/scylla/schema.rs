//! The table schema: read from `system_schema.columns` at start-up, or
//! taken from the `columns` / `partition_key` / `clustering_key` config.

use std::collections::BTreeMap;

use scylla::client::session::Session;

use super::config::ScyllaSinkConfig;
use super::cql_type::CqlType;
use super::mapping::TableSchema;

/// The schema declared in the config, if `columns` is set.
pub fn declared(cfg: &ScyllaSinkConfig) -> Result<Option<TableSchema>, String> {
    let Some(declared) = &cfg.columns else {
        if !cfg.partition_key.is_empty() || !cfg.clustering_key.is_empty() {
            return Err("`partition_key`/`clustering_key` are only used with `columns`".into());
        }
        return Ok(None);
    };
    if cfg.partition_key.is_empty() {
        return Err(
            "`columns` is set, so `partition_key` must list the partition key columns".into(),
        );
    }
    let mut columns = BTreeMap::new();
    for (name, text) in declared {
        let ty = CqlType::parse(text).map_err(|e| format!("column `{name}`: {e}"))?;
        columns.insert(name.clone(), ty);
    }
    for k in cfg.partition_key.iter().chain(&cfg.clustering_key) {
        match columns.get(k) {
            None => return Err(format!("key column `{k}` is not in `columns`")),
            Some(t) if t.is_collection() => {
                return Err(format!("key column `{k}` cannot be a collection ({t})"));
            }
            Some(_) => {}
        }
    }
    Ok(Some(TableSchema {
        columns,
        partition_key: cfg.partition_key.clone(),
        clustering_key: cfg.clustering_key.clone(),
        unsupported: BTreeMap::new(),
    }))
}

/// The query that reads a table's columns.
pub fn columns_query(keyspace: &str, table: &str) -> String {
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = {} AND table_name = {}",
        lit(keyspace),
        lit(table)
    )
}

/// Read the table's columns from `system_schema.columns`.
pub async fn fetch(session: &Session, keyspace: &str, table: &str) -> Result<TableSchema, String> {
    let result = session
        .query_unpaged(columns_query(keyspace, table), ())
        .await
        .map_err(|e| format!("reading system_schema.columns: {e}"))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| format!("reading system_schema.columns: {e}"))?;
    let mut raw: Vec<(String, String, i32, String)> = Vec::new();
    for row in rows
        .rows::<(String, String, i32, String)>()
        .map_err(|e| format!("reading system_schema.columns: {e}"))?
    {
        raw.push(row.map_err(|e| format!("reading system_schema.columns: {e}"))?);
    }
    from_rows(keyspace, table, raw)
}

/// Build a schema from `(column_name, kind, position, type)` rows.
pub fn from_rows(
    keyspace: &str,
    table: &str,
    mut rows: Vec<(String, String, i32, String)>,
) -> Result<TableSchema, String> {
    if rows.is_empty() {
        return Err(format!(
            "table {keyspace}.{table} does not exist (no rows in system_schema.columns)"
        ));
    }
    rows.sort_by_key(|r| r.2);
    let mut schema = TableSchema {
        columns: BTreeMap::new(),
        partition_key: Vec::new(),
        clustering_key: Vec::new(),
        unsupported: BTreeMap::new(),
    };
    for (name, kind, _pos, ty) in rows {
        match kind.as_str() {
            "partition_key" => schema.partition_key.push(name.clone()),
            "clustering" => schema.clustering_key.push(name.clone()),
            _ => {}
        }
        match CqlType::parse(&ty) {
            Ok(t) => {
                schema.columns.insert(name, t);
            }
            Err(e) => {
                schema.unsupported.insert(name, e.to_string());
            }
        }
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_keys_in_position_order() {
        let row = |n: &str, k: &str, p: i32, t: &str| (n.into(), k.into(), p, t.into());
        let s = from_rows(
            "ks",
            "t",
            vec![
                row("b", "partition_key", 1, "date"),
                row("a", "partition_key", 0, "text"),
                row("ts", "clustering", 0, "timestamp"),
                row("v", "regular", -1, "double"),
                row("c", "regular", -1, "counter"),
            ],
        )
        .unwrap();
        assert_eq!(s.partition_key, vec!["a", "b"]);
        assert_eq!(s.clustering_key, vec!["ts"]);
        assert_eq!(s.columns.len(), 4);
        assert!(s.unsupported["c"].contains("counter"));
        assert!(
            from_rows("ks", "missing", vec![])
                .unwrap_err()
                .contains("does not exist")
        );
        assert_eq!(
            columns_query("k's", "t"),
            "SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = 'k''s' AND table_name = 't'"
        );
    }
}
