//! A CQL endpoint on 127.0.0.1 for wire-level tests of the scylla sink.
//!
//! No ScyllaDB or Cassandra server can run on the test machines, so this
//! answers the CQL native protocol (v4) itself, with `scylla-proxy` in dry
//! mode doing the framing: OPTIONS → SUPPORTED, STARTUP/REGISTER → READY,
//! the driver's topology queries (`system.local`, `system.peers`) → one
//! local node, `system_schema.columns` → the rows the test declares,
//! PREPARE → bind-variable specs built from the declared column types,
//! EXECUTE/BATCH → VOID, or an error the test scripted.
//!
//! Every user-level request is decoded with `scylla-cql` and logged, so a
//! test asserts the exact CQL, consistency and bound value bytes.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};
use scylla_cql::Consistency;
use scylla_cql::frame::protocol_features::ProtocolFeatures;
use scylla_cql::frame::request::RequestV2;
use scylla_cql::frame::response::error::DbError;
use scylla_cql::frame::types::RawValue;
use scylla_proxy::{
    Condition, Node, Proxy, Reaction, RequestFrame, RequestOpcode, RequestReaction, RequestRule,
    ResponseFrame, ResponseOpcode, RunningProxy,
};

/// One bound value as it crossed the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// `unset` (-2): the column is left alone.
    Unset,
    /// `null` (-1).
    Null,
    /// The value's bytes in CQL encoding.
    Bytes(Vec<u8>),
}

/// One statement and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The CQL text (looked up by prepared id).
    pub cql: String,
    /// The bound values in marker order.
    pub values: Vec<Bound>,
}

/// What the responder answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// RESULT (void / prepared / rows).
    Ok,
    /// ERROR with this message.
    Error(String),
}

/// A user-level request seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// PREPARE of this CQL.
    Prepare(String),
    /// QUERY of this CQL.
    Query(String),
    /// EXECUTE of a prepared statement.
    Execute {
        /// Consistency level of the request.
        consistency: Consistency,
        /// The statement and values.
        write: Write,
        /// What was answered.
        answer: Answer,
    },
    /// BATCH of prepared statements.
    Batch {
        /// 0 = LOGGED, 1 = UNLOGGED, 2 = COUNTER.
        batch_type: u8,
        /// Consistency level of the batch.
        consistency: Consistency,
        /// Statements with their values, in order.
        writes: Vec<Write>,
        /// What was answered.
        answer: Answer,
    },
}

#[derive(Default)]
struct State {
    /// Column name → CQL type string, for the bind-variable specs.
    column_types: HashMap<String, String>,
    /// Rows answered to `system_schema.columns`: (name, kind, position, type).
    schema_rows: Vec<(String, String, i32, String)>,
    /// Prepared id → CQL text.
    prepared: HashMap<Vec<u8>, String>,
    /// Errors answered to the next user EXECUTE/BATCH requests, in order.
    faults: VecDeque<DbError>,
    /// Any EXECUTE/BATCH whose body contains these bytes is answered with the error.
    poison: Vec<(Vec<u8>, DbError)>,
    log: Vec<Request>,
}

/// A running CQL responder.
pub struct CqlResponder {
    /// `127.0.0.1:port` to give the driver as contact point.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    proxy: Option<RunningProxy>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    l.local_addr().expect("local addr").port()
}

impl CqlResponder {
    /// Start answering on 127.0.0.1; `columns` declares the table's column
    /// types (`("device_id", "text")`) used for PREPARE answers.
    pub async fn start(columns: &[(&str, &str)]) -> CqlResponder {
        let state = Arc::new(Mutex::new(State {
            column_types: columns
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            ..State::default()
        }));
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let st = state.clone();
        let rule = RequestRule(
            Condition::True,
            RequestReaction::forge_response(Arc::new(move |frame: RequestFrame| {
                respond(&st, addr, frame)
            })),
        );
        let proxy = Proxy::new([Node::new_dry_mode(addr, Some(vec![rule]))])
            .run()
            .await
            .expect("start the CQL responder");
        CqlResponder {
            addr,
            state,
            proxy: Some(proxy),
        }
    }

    /// Answer `system_schema.columns` with these rows.
    pub fn set_schema_rows(&self, rows: &[(&str, &str, i32, &str)]) {
        self.state.lock().unwrap().schema_rows = rows
            .iter()
            .map(|(n, k, p, t)| (n.to_string(), k.to_string(), *p, t.to_string()))
            .collect();
    }

    /// Answer the next user EXECUTE/BATCH requests with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = DbError>) {
        self.state.lock().unwrap().faults.extend(errors);
    }

    /// Answer every EXECUTE/BATCH containing `needle` with `error`.
    pub fn poison(&self, needle: &[u8], error: DbError) {
        self.state
            .lock()
            .unwrap()
            .poison
            .push((needle.to_vec(), error));
    }

    /// Every user-level request so far.
    pub fn log(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    /// The CQL of every PREPARE so far.
    pub fn prepared(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter_map(|r| match r {
                Request::Prepare(q) => Some(q),
                _ => None,
            })
            .collect()
    }

    /// Every EXECUTE and BATCH so far.
    pub fn writes(&self) -> Vec<Request> {
        self.log()
            .into_iter()
            .filter(|r| matches!(r, Request::Execute { .. } | Request::Batch { .. }))
            .collect()
    }

    /// Stop listening.
    pub async fn stop(mut self) {
        if let Some(p) = self.proxy.take() {
            let _ = p.finish().await;
        }
    }
}

// ---- response building (CQL v4) ----

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

fn put_bytes(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
        }
        None => buf.put_i32(-1),
    }
}

/// The `[option]` of a CQL type string.
fn put_type(buf: &mut BytesMut, ty: &str) {
    let t = ty.trim().to_ascii_lowercase();
    let t = t
        .strip_prefix("frozen<")
        .and_then(|r| r.strip_suffix('>'))
        .map(str::to_string)
        .unwrap_or(t);
    let inner = |prefix: &str| {
        t.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix('>'))
            .map(str::to_string)
    };
    if let Some(e) = inner("list<") {
        buf.put_u16(0x20);
        put_type(buf, &e);
    } else if let Some(e) = inner("set<") {
        buf.put_u16(0x22);
        put_type(buf, &e);
    } else if let Some(kv) = inner("map<") {
        // Split at the top-level comma.
        let mut depth = 0;
        let mut split = 0;
        for (i, c) in kv.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => split = i,
                _ => {}
            }
        }
        buf.put_u16(0x21);
        put_type(buf, &kv[..split]);
        put_type(buf, &kv[split + 1..]);
    } else {
        let id = match t.as_str() {
            "ascii" => 0x01,
            "bigint" => 0x02,
            "blob" => 0x03,
            "boolean" => 0x04,
            "decimal" => 0x06,
            "double" => 0x07,
            "float" => 0x08,
            "int" => 0x09,
            "timestamp" => 0x0B,
            "uuid" => 0x0C,
            "text" | "varchar" => 0x0D,
            "varint" => 0x0E,
            "timeuuid" => 0x0F,
            "inet" => 0x10,
            "date" => 0x11,
            "time" => 0x12,
            "smallint" => 0x13,
            "tinyint" => 0x14,
            other => panic!("responder: unknown CQL type {other}"),
        };
        buf.put_u16(id);
    }
}

/// `<flags><count>[<pk_count>...]<global spec><col specs>`.
fn put_metadata(
    buf: &mut BytesMut,
    prepared: bool,
    ks: &str,
    table: &str,
    cols: &[(String, String)],
) {
    buf.put_i32(0x0001); // global table spec
    buf.put_i32(cols.len() as i32);
    if prepared {
        buf.put_i32(0); // no partition key indexes: no token routing needed
    }
    put_string(buf, ks);
    put_string(buf, table);
    for (name, ty) in cols {
        put_string(buf, name);
        put_type(buf, ty);
    }
}

fn prepared_frame(
    req: &RequestFrame,
    id: &[u8],
    ks: &str,
    table: &str,
    vars: &[(String, String)],
    result_cols: &[(String, String)],
) -> ResponseFrame {
    let mut buf = BytesMut::new();
    buf.put_i32(0x0004); // Prepared
    buf.put_u16(id.len() as u16);
    buf.put_slice(id);
    put_metadata(&mut buf, true, ks, table, vars);
    if result_cols.is_empty() {
        buf.put_i32(0x0004); // no metadata
        buf.put_i32(0);
    } else {
        put_metadata(&mut buf, false, ks, table, result_cols);
    }
    ResponseFrame::new(
        req.params.for_response(),
        ResponseOpcode::Result,
        buf.freeze(),
    )
}

fn rows_frame(
    req: &RequestFrame,
    ks: &str,
    table: &str,
    cols: &[(String, String)],
    rows: &[Vec<Option<Vec<u8>>>],
) -> ResponseFrame {
    let mut buf = BytesMut::new();
    buf.put_i32(0x0002); // Rows
    put_metadata(&mut buf, false, ks, table, cols);
    buf.put_i32(rows.len() as i32);
    for row in rows {
        for v in row {
            put_bytes(&mut buf, v.as_deref());
        }
    }
    ResponseFrame::new(
        req.params.for_response(),
        ResponseOpcode::Result,
        buf.freeze(),
    )
}

fn void_frame(req: &RequestFrame) -> ResponseFrame {
    let mut buf = BytesMut::new();
    buf.put_i32(0x0001);
    ResponseFrame::new(
        req.params.for_response(),
        ResponseOpcode::Result,
        buf.freeze(),
    )
}

fn cols(spec: &[(&str, &str)]) -> Vec<(String, String)> {
    spec.iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

const LOCAL_COLS: &[(&str, &str)] = &[
    ("host_id", "uuid"),
    ("rpc_address", "inet"),
    ("data_center", "text"),
    ("rack", "text"),
    ("tokens", "set<text>"),
    ("cluster_name", "text"),
];
const SCHEMA_COLS: &[(&str, &str)] = &[
    ("column_name", "text"),
    ("kind", "text"),
    ("position", "int"),
    ("type", "text"),
];

fn local_row(addr: SocketAddr) -> Vec<Option<Vec<u8>>> {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut tokens = BytesMut::new();
    tokens.put_i32(1);
    put_bytes(&mut tokens, Some(b"0"));
    vec![
        Some((1..=16).collect()),
        Some(ip),
        Some(b"datacenter1".to_vec()),
        Some(b"rack1".to_vec()),
        Some(tokens.to_vec()),
        Some(b"weir-test".to_vec()),
    ]
}

/// `INSERT INTO ks.t (a, b) VALUES (?, ?) USING TTL ? AND TIMESTAMP ?` or
/// `DELETE FROM ks.t [USING TIMESTAMP ?] WHERE a = ? AND b = ?` → the
/// bind-variable specs.
fn bind_specs(types: &HashMap<String, String>, cql: &str) -> Vec<(String, String)> {
    let ty = |name: &str| {
        let n = name.trim().trim_matches('"');
        (
            n.to_string(),
            types
                .get(n)
                .unwrap_or_else(|| panic!("responder: no type declared for column {n}"))
                .clone(),
        )
    };
    let mut specs = Vec::new();
    if let Some(rest) = cql.strip_prefix("INSERT INTO ") {
        let open = rest.find('(').expect("column list");
        let close = rest.find(')').expect("column list");
        for c in rest[open + 1..close].split(',') {
            specs.push(ty(c));
        }
        let tail = &rest[close..];
        if tail.contains("TTL ?") {
            specs.push(("[ttl]".to_string(), "int".to_string()));
        }
        if tail.contains("TIMESTAMP ?") {
            specs.push(("[timestamp]".to_string(), "bigint".to_string()));
        }
    } else if let Some(rest) = cql.strip_prefix("DELETE FROM ") {
        let where_at = rest.find(" WHERE ").expect("WHERE");
        if rest[..where_at].contains("TIMESTAMP ?") {
            specs.push(("[timestamp]".to_string(), "bigint".to_string()));
        }
        for cond in rest[where_at + 7..].split(" AND ") {
            specs.push(ty(cond.split('=').next().unwrap_or_default()));
        }
    }
    specs
}

fn table_of(cql: &str) -> (String, String) {
    let after = cql
        .strip_prefix("INSERT INTO ")
        .or_else(|| cql.strip_prefix("DELETE FROM "))
        .unwrap_or("ks.t");
    let name = after.split([' ', '(']).next().unwrap_or("ks.t");
    let (ks, t) = name.split_once('.').unwrap_or(("ks", name));
    (ks.to_string(), t.to_string())
}

fn bound<'a>(values: impl Iterator<Item = RawValue<'a>>) -> Vec<Bound> {
    values
        .map(|v| match v {
            RawValue::Null => Bound::Null,
            RawValue::Unset => Bound::Unset,
            RawValue::Value(b) => Bound::Bytes(b.to_vec()),
        })
        .collect()
}

fn respond(state: &Arc<Mutex<State>>, addr: SocketAddr, req: RequestFrame) -> ResponseFrame {
    let mut st = state.lock().unwrap();
    match req.opcode {
        RequestOpcode::Options => {
            let mut options = HashMap::new();
            options.insert("CQL_VERSION".to_string(), vec!["3.4.5".to_string()]);
            options.insert("COMPRESSION".to_string(), vec![]);
            ResponseFrame::forged_supported(req.params, &options).unwrap()
        }
        RequestOpcode::Startup | RequestOpcode::Register => ResponseFrame::forged_ready(req.params),
        RequestOpcode::Prepare => {
            let len = i32::from_be_bytes(req.body[0..4].try_into().unwrap()) as usize;
            let cql = String::from_utf8(req.body[4..4 + len].to_vec()).unwrap();
            let id = format!("id{:04}", st.prepared.len()).into_bytes();
            st.prepared.insert(id.clone(), cql.clone());
            if cql.contains("FROM system.local") || cql.contains("FROM system.peers") {
                let table = if cql.contains("system.local") {
                    "local"
                } else {
                    "peers"
                };
                let result = if table == "local" {
                    cols(LOCAL_COLS)
                } else {
                    cols(&LOCAL_COLS[..5])
                };
                let vars = Vec::new();
                return prepared_frame(&req, &id, "system", table, &vars, &result);
            }
            st.log.push(Request::Prepare(cql.clone()));
            let vars = bind_specs(&st.column_types, &cql);
            let (ks, table) = table_of(&cql);
            prepared_frame(&req, &id, &ks, &table, &vars, &[])
        }
        RequestOpcode::Query => {
            let decoded = req.deserialize(&ProtocolFeatures::default()).unwrap();
            let RequestV2::Query(q) = decoded else {
                unreachable!()
            };
            let cql = q.contents.to_string();
            if cql.contains("FROM system.local") || cql.contains("FROM system.peers") {
                let rows = if cql.contains("system.local") {
                    vec![local_row(addr)]
                } else {
                    vec![]
                };
                let table = if cql.contains("system.local") {
                    "local"
                } else {
                    "peers"
                };
                let c = if table == "local" {
                    cols(LOCAL_COLS)
                } else {
                    cols(&LOCAL_COLS[..5])
                };
                return rows_frame(&req, "system", table, &c, &rows);
            }
            st.log.push(Request::Query(cql.clone()));
            if cql.contains("FROM system_schema.columns") {
                let rows: Vec<Vec<Option<Vec<u8>>>> = st
                    .schema_rows
                    .iter()
                    .map(|(n, k, p, t)| {
                        vec![
                            Some(n.as_bytes().to_vec()),
                            Some(k.as_bytes().to_vec()),
                            Some(p.to_be_bytes().to_vec()),
                            Some(t.as_bytes().to_vec()),
                        ]
                    })
                    .collect();
                return rows_frame(&req, "system_schema", "columns", &cols(SCHEMA_COLS), &rows);
            }
            void_frame(&req)
        }
        RequestOpcode::Execute | RequestOpcode::Batch => {
            let fault = if let Some((_, e)) = st
                .poison
                .iter()
                .find(|(needle, _)| req.body.windows(needle.len()).any(|w| w == &needle[..]))
            {
                Some(e.clone())
            } else {
                None
            };
            let decoded = req.deserialize(&ProtocolFeatures::default()).unwrap();
            let (entry, system) = match decoded {
                RequestV2::Execute(e) => {
                    let cql = st
                        .prepared
                        .get(e.id.as_ref())
                        .cloned()
                        .unwrap_or_else(|| panic!("responder: EXECUTE of an unknown id"));
                    if cql.contains("FROM system.local") || cql.contains("FROM system.peers") {
                        let local = cql.contains("system.local");
                        let rows = if local { vec![local_row(addr)] } else { vec![] };
                        let c = if local {
                            cols(LOCAL_COLS)
                        } else {
                            cols(&LOCAL_COLS[..5])
                        };
                        let t = if local { "local" } else { "peers" };
                        return rows_frame(&req, "system", t, &c, &rows);
                    }
                    (
                        Request::Execute {
                            consistency: e.parameters.consistency,
                            write: Write {
                                cql,
                                values: bound(e.parameters.values.iter()),
                            },
                            answer: Answer::Ok,
                        },
                        false,
                    )
                }
                RequestV2::Batch(b) => {
                    let writes = b
                        .statements
                        .iter()
                        .zip(b.values.iter())
                        .map(|(s, v)| {
                            let cql = match s {
                                scylla_cql::frame::request::batch::BatchStatement::Prepared {
                                    id,
                                } => st.prepared.get(id.as_ref()).cloned().unwrap_or_default(),
                                scylla_cql::frame::request::batch::BatchStatement::Query {
                                    text,
                                } => text.to_string(),
                            };
                            Write {
                                cql,
                                values: bound(v.iter()),
                            }
                        })
                        .collect();
                    (
                        Request::Batch {
                            batch_type: b.batch_type as u8,
                            consistency: b.consistency,
                            writes,
                            answer: Answer::Ok,
                        },
                        false,
                    )
                }
                _ => panic!("responder: unexpected request {:?}", req.opcode),
            };
            debug_assert!(!system);
            let fault = fault.or_else(|| st.faults.pop_front());
            let (entry, response) = match fault {
                None => (entry, void_frame(&req)),
                Some(err) => {
                    let msg = format!("forged {err:?}");
                    let entry = match entry {
                        Request::Execute {
                            consistency, write, ..
                        } => Request::Execute {
                            consistency,
                            write,
                            answer: Answer::Error(msg.clone()),
                        },
                        Request::Batch {
                            batch_type,
                            consistency,
                            writes,
                            ..
                        } => Request::Batch {
                            batch_type,
                            consistency,
                            writes,
                            answer: Answer::Error(msg.clone()),
                        },
                        other => other,
                    };
                    (
                        entry,
                        ResponseFrame::forged_error(req.params, err, Some(&msg)).unwrap(),
                    )
                }
            };
            st.log.push(entry);
            response
        }
        _ => void_frame(&req),
    }
}
