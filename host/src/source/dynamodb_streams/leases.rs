//! The lease and checkpoint table, in the Kinesis Client Library's pattern.
//!
//! One row per shard of a (lease group, stream): partition key
//! `lease_group` (`GROUP@STREAM_ARN`), sort key `shard_id`, and
//! - `checkpoint`: `TRIM_HORIZON`, `LATEST`, `LATEST_SINCE:<ms>`,
//!   `AT_SEQUENCE_NUMBER:<seq>` (see [`Position`]), a sequence number (the
//!   last one whose outputs are all acknowledged) or `SHARD_END`;
//! - `owner`: the lease holder's token (`host#n`, new on every take), absent
//!   when free;
//! - `counter`: incremented by every renewal and take;
//! - `parent`: the parent shard id, for lineage; `heartbeat_ms`: for humans.
//!
//! Every write is conditional: renewals and checkpoints on `owner` being
//! the writer's token (so a host that lost a lease can never move its
//! checkpoint), takes on `counter` being what the taker last saw. A lease
//! is expired when its counter has not moved for a lease duration of the
//! observer's own clock, so hosts' clocks need not agree. The table is
//! created (on demand billing) when missing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};

use crate::dynamodb::client::error_text;

/// Where a shard's reading stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Nothing read yet: start at the oldest record.
    TrimHorizon,
    /// Nothing read yet and never taken: start after the newest record.
    Latest,
    /// Taken at `Latest` at this time (milliseconds since the epoch, on the
    /// taker's clock), no record read yet. A later holder cannot know where
    /// the first one's iterator stood, so it reads from the oldest record
    /// and skips the records created well before this time.
    LatestSince(u64),
    /// The first record read after a `Latest` start, stored before any of
    /// it was handed on: start at (and including) this sequence number.
    At(String),
    /// Everything up to and including this sequence number is done.
    Sequence(String),
    /// The shard is closed and fully done.
    ShardEnd,
}

/// Stored prefix of [`Position::LatestSince`].
const LATEST_SINCE: &str = "LATEST_SINCE:";
/// Stored prefix of [`Position::At`].
const AT_SEQUENCE: &str = "AT_SEQUENCE_NUMBER:";

impl Position {
    /// The stored text.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Position::TrimHorizon => "TRIM_HORIZON".into(),
            Position::Latest => "LATEST".into(),
            Position::LatestSince(ms) => format!("{LATEST_SINCE}{ms}").into(),
            Position::At(seq) => format!("{AT_SEQUENCE}{seq}").into(),
            Position::Sequence(s) => s.as_str().into(),
            Position::ShardEnd => "SHARD_END".into(),
        }
    }

    /// Parse the stored text.
    pub fn parse(text: &str) -> Position {
        match text {
            "TRIM_HORIZON" => Position::TrimHorizon,
            "LATEST" => Position::Latest,
            "SHARD_END" => Position::ShardEnd,
            _ => {
                if let Some(ms) = text
                    .strip_prefix(LATEST_SINCE)
                    .and_then(|ms| ms.parse().ok())
                {
                    Position::LatestSince(ms)
                } else if let Some(seq) = text.strip_prefix(AT_SEQUENCE) {
                    Position::At(seq.to_string())
                } else {
                    Position::Sequence(text.to_string())
                }
            }
        }
    }
}

/// One row of the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard.
    pub shard_id: String,
    /// Its parent shard.
    pub parent: Option<String>,
    /// The checkpoint.
    pub position: Position,
    /// The holder's token, if held.
    pub owner: Option<String>,
    /// Renewal counter.
    pub counter: u64,
}

impl Lease {
    /// The host part of the owner token.
    pub fn owner_host(&self) -> Option<&str> {
        self.owner.as_deref().map(host_of)
    }
}

/// The host part of an owner token (`host#n`).
pub fn host_of(token: &str) -> &str {
    token.rsplit_once('#').map_or(token, |(h, _)| h)
}

/// Why a lease-table call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    /// Retry later.
    #[error("{0}")]
    Transient(String),
    /// The table cannot be used (permissions, a table with another schema).
    #[error("{0}")]
    Fatal(String),
}

fn lease_error<E, R>(what: &str, table: &str, err: &SdkError<E, R>) -> LeaseError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let text = format!("lease table {table}: {what}: {}", error_text(err));
    match err {
        SdkError::ServiceError(ctx) => match ctx.err().code().unwrap_or("") {
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "ValidationException"
            | "ResourceNotFoundException"
            | "MissingAuthenticationTokenException"
            | "InvalidSignatureException" => LeaseError::Fatal(text),
            _ => LeaseError::Transient(text),
        },
        SdkError::ConstructionFailure(_) => LeaseError::Fatal(text),
        _ => LeaseError::Transient(text),
    }
}

/// Whether a conditional write was applied: `Ok(false)` when its condition
/// did not hold (another host renewed, took or created the lease first).
fn applied<T, E, R>(
    what: &str,
    table: &str,
    sent: Result<T, SdkError<E, R>>,
) -> Result<bool, LeaseError>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(lease_error(what, table, &e)),
    }
}

fn condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(ctx) if ctx.err().code() == Some("ConditionalCheckFailedException"))
}

fn now_ms() -> u64 {
    crate::calendar::now_unix_ms().unsigned_abs()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The lease rows of one (group, stream).
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
    group: String,
}

impl LeaseTable {
    /// Rows of `group` in `table`.
    pub fn new(client: Client, table: impl Into<String>, group: impl Into<String>) -> Self {
        LeaseTable {
            client,
            table: table.into(),
            group: group.into(),
        }
    }

    /// The partition key value of this group's rows.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Create the table if it is missing and wait until it is active.
    pub async fn ensure_table(&self) -> Result<(), LeaseError> {
        for _ in 0..600 {
            match self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
            {
                Ok(out) => {
                    let status = out.table().and_then(|t| t.table_status()).cloned();
                    if status == Some(TableStatus::Active) || status.is_none() {
                        return Ok(());
                    }
                }
                Err(e) if matches!(&e, SdkError::ServiceError(c) if c.err().is_resource_not_found_exception()) =>
                {
                    let created = self
                        .client
                        .create_table()
                        .table_name(&self.table)
                        .billing_mode(BillingMode::PayPerRequest)
                        .attribute_definitions(attr_def("lease_group")?)
                        .attribute_definitions(attr_def("shard_id")?)
                        .key_schema(key_elem("lease_group", KeyType::Hash)?)
                        .key_schema(key_elem("shard_id", KeyType::Range)?)
                        .send()
                        .await;
                    if let Err(e) = created
                        && e.as_service_error().map(|s| s.code())
                            != Some(Some("ResourceInUseException"))
                    {
                        return Err(lease_error("create table", &self.table, &e));
                    }
                }
                Err(e) => return Err(lease_error("describe table", &self.table, &e)),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(LeaseError::Transient(format!(
            "lease table {} did not become active",
            self.table
        )))
    }

    /// Every row of the group (strongly consistent).
    pub async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("lease_group = :g")
                .expression_attribute_values(":g", s(&self.group))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| lease_error("query", &self.table, &e))?;
            for item in page.items() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let Some(shard_id) = text("shard_id") else {
                    continue;
                };
                out.push(Lease {
                    shard_id,
                    parent: text("parent"),
                    position: Position::parse(
                        &text("checkpoint").unwrap_or_else(|| "TRIM_HORIZON".into()),
                    ),
                    owner: text("owner"),
                    counter: item
                        .get("counter")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                });
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// An UpdateItem on the lease row of `shard_id`.
    fn lease_update(&self, shard_id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("lease_group", s(&self.group))
            .key("shard_id", s(shard_id))
    }

    /// Create a free lease; `false` when another host created it first.
    pub async fn create(
        &self,
        shard_id: &str,
        parent: Option<&str>,
        position: &Position,
    ) -> Result<bool, LeaseError> {
        let mut item = HashMap::from([
            ("lease_group".to_string(), s(&self.group)),
            ("shard_id".to_string(), s(shard_id)),
            ("checkpoint".to_string(), s(position.as_str())),
            ("counter".to_string(), n(0)),
        ]);
        if let Some(p) = parent {
            item.insert("parent".into(), s(p));
        }
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(shard_id)")
            .send()
            .await;
        applied("create lease", &self.table, sent)
    }

    /// Take a lease whose counter was last seen at `seen_counter`; `None`
    /// when someone renewed or took it since. On success, the position the
    /// taker reads from is returned. A lease at `Latest` becomes
    /// `LatestSince(now)` in the same write (conditional on still being at
    /// `Latest`), so whoever holds it next knows from when on the first
    /// holder may have read.
    pub async fn take(
        &self,
        shard_id: &str,
        seen_counter: u64,
        seen_position: &Position,
        token: &str,
    ) -> Result<Option<Position>, LeaseError> {
        let now = now_ms();
        let mut update = self
            .lease_update(shard_id)
            .condition_expression("#c = :seen")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":o", s(token))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":seen", n(seen_counter));
        let position = if *seen_position == Position::Latest {
            let since = Position::LatestSince(now);
            update = update
                .update_expression("SET #o = :o, heartbeat_ms = :now, #p = :since ADD #c :one")
                .condition_expression("#c = :seen AND #p = :latest")
                .expression_attribute_names("#p", "checkpoint")
                .expression_attribute_values(":since", s(since.as_str()))
                .expression_attribute_values(":latest", s(Position::Latest.as_str()));
            // This holder is the first: it reads from the newest record.
            Position::Latest
        } else {
            update = update.update_expression("SET #o = :o, heartbeat_ms = :now ADD #c :one");
            seen_position.clone()
        };
        Ok(applied("take lease", &self.table, update.send().await)?.then_some(position))
    }

    /// Renew a held lease; `false` when it is no longer held by `token`.
    pub async fn renew(&self, shard_id: &str, token: &str) -> Result<bool, LeaseError> {
        let update = self
            .lease_update(shard_id)
            .update_expression("SET heartbeat_ms = :now ADD #c :one")
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":o", s(token))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":one", n(1));
        applied("renew lease", &self.table, update.send().await)
    }

    /// Store a checkpoint of a held lease; `false` when it is no longer
    /// held by `token` (the new holder restarts from the stored checkpoint).
    pub async fn checkpoint(
        &self,
        shard_id: &str,
        token: &str,
        position: &Position,
    ) -> Result<bool, LeaseError> {
        let update = self
            .lease_update(shard_id)
            .update_expression("SET #p = :p")
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#p", "checkpoint")
            .expression_attribute_values(":o", s(token))
            .expression_attribute_values(":p", s(position.as_str()));
        applied("checkpoint", &self.table, update.send().await)
    }

    /// Mark a lease finished without holding it (its shard vanished and the
    /// loss was reported), conditional on the counter last seen.
    pub async fn finish_unheld(
        &self,
        shard_id: &str,
        seen_counter: u64,
    ) -> Result<bool, LeaseError> {
        let update = self
            .lease_update(shard_id)
            .update_expression("SET #p = :p REMOVE #o ADD #c :one")
            .condition_expression("#c = :seen")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#p", "checkpoint")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":p", s(Position::ShardEnd.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":seen", n(seen_counter));
        applied("finish lease", &self.table, update.send().await)
    }

    /// Give a held lease up so another host can take it at once.
    pub async fn release(&self, shard_id: &str, token: &str) -> Result<bool, LeaseError> {
        let update = self
            .lease_update(shard_id)
            .update_expression("REMOVE #o ADD #c :one")
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":o", s(token))
            .expression_attribute_values(":one", n(1));
        applied("release lease", &self.table, update.send().await)
    }
}

fn attr_def(name: &str) -> Result<AttributeDefinition, LeaseError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| LeaseError::Fatal(e.to_string()))
}

fn key_elem(name: &str, kind: KeyType) -> Result<KeySchemaElement, LeaseError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| LeaseError::Fatal(e.to_string()))
}

/// When each lease's counter was last seen to change, on this host's clock.
#[derive(Debug, Default)]
pub struct Observations {
    seen: HashMap<String, (u64, Instant)>,
}

impl Observations {
    /// Record the counters of a listing.
    pub fn observe(&mut self, leases: &[Lease], now: Instant) {
        for l in leases {
            let entry = self
                .seen
                .entry(l.shard_id.clone())
                .or_insert((l.counter, now));
            if entry.0 != l.counter {
                *entry = (l.counter, now);
            }
        }
        let ids: HashSet<&str> = leases.iter().map(|l| l.shard_id.as_str()).collect();
        self.seen.retain(|k, _| ids.contains(k.as_str()));
    }

    /// Free, or held but not renewed for `duration`.
    pub fn expired(&self, lease: &Lease, now: Instant, duration: Duration) -> bool {
        if lease.owner.is_none() {
            return true;
        }
        match self.seen.get(&lease.shard_id) {
            Some((counter, since)) => {
                *counter == lease.counter && now.duration_since(*since) >= duration
            }
            None => false,
        }
    }
}

/// What this host should take on one balancing round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Takes {
    /// Free or expired leases to take.
    pub take: Vec<String>,
    /// A live lease to steal from the busiest host (at most one per round).
    pub steal: Option<String>,
}

/// KCL-style balancing: each host aims at `ceil(readable / hosts)` leases,
/// where hosts are those holding a live lease, plus this one. It takes free
/// and expired leases first; if there are none and it is still short, it
/// steals one lease from the host holding the most, if that host holds more
/// than the target. `readable` = not finished and parent finished.
pub fn plan_takes(
    readable: &[&Lease],
    me: &str,
    mine: usize,
    expired: impl Fn(&Lease) -> bool,
    max_leases: Option<usize>,
) -> Takes {
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for l in readable {
        if let Some(h) = l.owner_host()
            && h != me
            && !expired(l)
        {
            *per_host.entry(h).or_default() += 1;
        }
    }
    let hosts = per_host.len() + 1;
    let mut target = readable.len().div_ceil(hosts);
    if let Some(max) = max_leases {
        target = target.min(max);
    }
    let mut takes = Takes::default();
    if mine >= target {
        return takes;
    }
    let need = target - mine;
    let mut free: Vec<&&Lease> = readable
        .iter()
        .filter(|l| l.owner_host() != Some(me) && expired(l))
        .collect();
    // Free ones first, then expired, each in shard order.
    free.sort_by_key(|l| (l.owner.is_some(), l.shard_id.clone()));
    takes.take = free.iter().take(need).map(|l| l.shard_id.clone()).collect();
    if takes.take.is_empty()
        && let Some((&busiest, &count)) = per_host
            .iter()
            .max_by_key(|(h, c)| (**c, std::cmp::Reverse(**h)))
        && count > target
    {
        takes.steal = readable
            .iter()
            .filter(|l| l.owner_host() == Some(busiest) && !expired(l))
            .map(|l| l.shard_id.clone())
            .max();
    }
    takes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, owner: Option<&str>) -> Lease {
        Lease {
            shard_id: id.into(),
            parent: None,
            position: Position::TrimHorizon,
            owner: owner.map(Into::into),
            counter: 1,
        }
    }

    #[test]
    fn a_lone_host_takes_everything_free() {
        let ls = [lease("a", None), lease("b", None), lease("c", None)];
        let refs: Vec<&Lease> = ls.iter().collect();
        let t = plan_takes(&refs, "h1", 0, |l| l.owner.is_none(), None);
        assert_eq!(t.take, vec!["a", "b", "c"]);
        assert_eq!(t.steal, None);
    }

    #[test]
    fn a_second_host_steals_until_balanced() {
        let ls = [
            lease("a", Some("h1#1")),
            lease("b", Some("h1#2")),
            lease("c", Some("h1#3")),
            lease("d", Some("h1#4")),
        ];
        let refs: Vec<&Lease> = ls.iter().collect();
        let t = plan_takes(&refs, "h2", 0, |l| l.owner.is_none(), None);
        assert!(t.take.is_empty());
        assert_eq!(t.steal.as_deref(), Some("d"));
        // Balanced: 2 and 2.
        let ls = [
            lease("a", Some("h1#1")),
            lease("b", Some("h1#2")),
            lease("c", Some("h2#1")),
            lease("d", Some("h2#2")),
        ];
        let refs: Vec<&Lease> = ls.iter().collect();
        assert_eq!(
            plan_takes(&refs, "h2", 2, |l| l.owner.is_none(), None),
            Takes::default()
        );
    }

    #[test]
    fn expired_leases_of_a_dead_host_are_taken() {
        let ls = [lease("a", Some("dead#1")), lease("b", Some("h2#1"))];
        let refs: Vec<&Lease> = ls.iter().collect();
        let t = plan_takes(&refs, "h2", 1, |l| l.owner_host() == Some("dead"), None);
        assert_eq!(t.take, vec!["a"]);
    }

    #[test]
    fn expiry_is_measured_on_the_observers_clock() {
        let mut obs = Observations::default();
        let t0 = Instant::now();
        let mut l = lease("a", Some("h1#1"));
        obs.observe(std::slice::from_ref(&l), t0);
        let d = Duration::from_secs(10);
        assert!(!obs.expired(&l, t0 + Duration::from_secs(9), d));
        assert!(obs.expired(&l, t0 + Duration::from_secs(10), d));
        l.counter = 2;
        obs.observe(std::slice::from_ref(&l), t0 + Duration::from_secs(11));
        assert!(!obs.expired(&l, t0 + Duration::from_secs(20), d));
        assert_eq!(Position::parse("SHARD_END"), Position::ShardEnd);
        assert_eq!(Position::parse("123").as_str(), "123");
        for p in [
            Position::TrimHorizon,
            Position::Latest,
            Position::LatestSince(1_700_000_000_123),
            Position::At("42".into()),
            Position::Sequence("43".into()),
            Position::ShardEnd,
        ] {
            assert_eq!(Position::parse(&p.as_str()), p);
        }
    }
}
