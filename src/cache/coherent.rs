//! Coherent local copies over Redis: the protocol that lets each replica
//! answer scope versions from `NearCopies` without a round trip, and still
//! never serve one a writer has retired.
//!
//! - A writer stores the new value, numbers the change and publishes it in
//!   one script, then waits until every *other* replica holding a lease has
//!   acknowledged that number (or its lease has run out).
//! - Each replica subscribes first, then leases: it registers in a sorted set
//!   scored by Redis' clock (`now + LEASE`) and counts its own lease from
//!   before the request, so it always stops reading copies before writers
//!   stop waiting for it.
//! - A replica renews only while its subscriber keeps up: if a change
//!   published before the previous renewal is still unapplied, the
//!   subscription is presumed stalled, the lease ends and it resubscribes.
//!   A lagging replica thus leaves the set within about `RENEW_EVERY + LEASE`,
//!   which bounds any writer's wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use super::near::NearCopies;

const LEASE: Duration = Duration::from_secs(2);
const RENEW_EVERY: Duration = Duration::from_millis(500);
/// With Redis unreachable, a writer waits this long: past it, every lease
/// granted before its change has run out.
const UNREACHABLE_WAIT: Duration = Duration::from_millis(500 + 2000 + 250);
/// A bound on any wait, should leases misbehave (clock jumps on Redis' host).
const WAIT_AT_MOST: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Acknowledgements outlive leases, so a replica quiet for a while still counts as caught up.
const ACK_TTL_MS: u64 = 20 * 2000;

/// SET the value, number the change and publish `number \n key`, atomically:
/// subscribers hear changes in the order of their numbers.
const PUBLISH: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], seq .. '\n' .. ARGV[4])
return seq
";

/// How many leaseholders other than ARGV[2] have not acknowledged change ARGV[1].
const PENDING: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local pending = 0
for _, replica in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if replica ~= ARGV[2] then
    local ack = tonumber(redis.call('GET', ARGV[3] .. replica)) or 0
    if ack < tonumber(ARGV[1]) then pending = pending + 1 end
  end
end
return pending
";

/// Registers ARGV[1]'s lease until Redis' now + ARGV[2] ms, raises its
/// acknowledgement to at least ARGV[3], and answers the latest change number.
/// Answers -1 and registers nothing when Redis has lost what the replica
/// relies on (flushed, evicted, failed over): change numbers behind what it
/// applied, or, when it holds a lease (ARGV[5] = 1), its lease entry. The
/// replica then drops its copies and starts over.
const RENEW: &str = r"
local latest = tonumber(redis.call('GET', KEYS[3])) or 0
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > latest or (ARGV[5] == '1' and not held) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
local acked = tonumber(redis.call('GET', KEYS[2])) or 0
redis.call('SET', KEYS[2], math.max(acked, tonumber(ARGV[3])), 'PX', ARGV[4])
return latest
";

/// The Redis names one namespace's coherence uses.
struct Names {
    channel: String,
    sequence: String,
    leases: String,
    ack_prefix: String,
}

pub struct Coherence {
    shared: Arc<Shared>,
    publish: redis::Script,
    pending: redis::Script,
    connection: ConnectionManager,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// What the subscriber and the lease keeper share.
struct Shared {
    near: NearCopies,
    replica: String,
    /// This replica's acknowledgement key (`ack_prefix` + `replica`).
    ack_key: String,
    names: Names,
    /// The latest change number applied to the copies.
    applied: AtomicU64,
    /// Asks the subscriber to start over (the lease keeper saw it stall).
    resubscribe: Notify,
    /// Asks the lease keeper to renew now (a subscription was just confirmed).
    renew_now: Notify,
}

impl Coherence {
    /// Starts the subscriber and the lease keeper for `namespace`; copies are
    /// read only once both are up.
    pub fn start(client: redis::Client, connection: ConnectionManager, namespace: &str) -> Self {
        let names = Names {
            channel: format!("{namespace}:near:changes"),
            sequence: format!("{namespace}:near:seq"),
            leases: format!("{namespace}:near:leases"),
            ack_prefix: format!("{namespace}:near:ack:"),
        };
        let replica = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            near: NearCopies::default(),
            ack_key: format!("{}{replica}", names.ack_prefix),
            replica,
            names,
            applied: AtomicU64::new(0),
            resubscribe: Notify::new(),
            renew_now: Notify::new(),
        });
        let tasks = vec![
            tokio::spawn(subscribe(client, connection.clone(), shared.clone())).abort_handle(),
            tokio::spawn(keep_lease(connection.clone(), shared.clone())).abort_handle(),
        ];
        Self { shared, publish: redis::Script::new(PUBLISH), pending: redis::Script::new(PENDING), connection, tasks }
    }

    /// This replica's copies.
    pub fn near(&self) -> &NearCopies {
        &self.shared.near
    }

    /// The invocation that stores `value` under `full_key` (TTL in ms) and
    /// publishes the change of `key`; answers the change's number.
    pub fn publish(&self, full_key: &str, key: &str, value: &[u8], ttl_ms: u64) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.publish.key(full_key);
        invocation.key(&self.shared.names.sequence).arg(value).arg(ttl_ms).arg(&self.shared.names.channel).arg(key);
        invocation
    }

    /// Waits until every other leaseholder has applied change `seq`. A
    /// replica that lags stops renewing, so its lease leaves Redis' set and
    /// stops counting within `RENEW_EVERY + LEASE`; with Redis unreachable,
    /// the wait ends when any lease granted before the change has run out.
    pub async fn await_acknowledgements(&self, seq: u64) {
        let started = Instant::now();
        let mut connection = self.connection.clone();
        for attempt in 0u32.. {
            let mut invocation = self.pending.key(&self.shared.names.leases);
            invocation.arg(seq).arg(&self.shared.replica).arg(&self.shared.names.ack_prefix);
            let pending: redis::RedisResult<u64> = invocation.invoke_async(&mut connection).await;
            let waited = started.elapsed();
            match pending {
                Ok(0) => return,
                Err(_) if waited >= UNREACHABLE_WAIT => return,
                _ if waited >= WAIT_AT_MOST => {
                    tracing::warn!(seq, "replicas neither acknowledged a cache change nor let their leases run out");
                    return;
                }
                _ => {}
            }
            // The first checks come at once (an acknowledgement takes a round
            // trip or two on a LAN); then back off to at most 16 ms.
            if attempt >= 3 {
                tokio::time::sleep(Duration::from_millis(1 << (attempt - 3).min(4))).await;
            }
        }
    }

    /// Stops hearing changes and leaves the lease set, so writers stop
    /// waiting for this replica at once (else they would until its lease ends).
    pub async fn release(&self) {
        self.stop_tasks();
        let mut connection = self.connection.clone();
        let mut leave = redis::cmd("ZREM");
        leave.arg(&self.shared.names.leases).arg(&self.shared.replica);
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, leave.query_async::<()>(&mut connection)).await;
    }

    fn stop_tasks(&self) {
        self.shared.near.stop_listening();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Coherence {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

/// Parses a published change: `number \n key`.
fn parse_change(payload: &[u8]) -> Option<(u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (number, key) = text.split_once('\n')?;
    Some((number.parse().ok()?, key))
}

/// Hears changes and applies them to the copies, for as long as the process
/// runs: after a lost or stalled subscription it stops the lease and starts over.
async fn subscribe(client: redis::Client, connection: ConnectionManager, shared: Arc<Shared>) {
    let mut failures = 0u32;
    loop {
        let outcome = listen(&client, connection.clone(), &shared).await;
        shared.near.stop_listening();
        failures = match outcome {
            Listened::Heard => 0,
            Listened::Failed => failures.saturating_add(1),
        };
        tokio::time::sleep(Duration::from_millis(100 << failures.min(5))).await;
    }
}

enum Listened {
    /// The subscription worked for a while before it ended.
    Heard,
    Failed,
}

async fn listen(client: &redis::Client, mut connection: ConnectionManager, shared: &Shared) -> Listened {
    let subscribed = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&shared.names.channel).await?;
        // Every change numbered after this read reaches the subscription.
        let latest: Option<u64> = redis::cmd("GET").arg(&shared.names.sequence).query_async(&mut connection).await?;
        Ok::<_, redis::RedisError>((pubsub, latest.unwrap_or(0)))
    })
    .await;
    let Ok(Ok((pubsub, latest))) = subscribed else {
        return Listened::Failed;
    };
    shared.applied.store(latest, Ordering::SeqCst);
    shared.near.start_listening();
    shared.renew_now.notify_one();
    let mut changes = pubsub.into_on_message();
    loop {
        let message = tokio::select! {
            message = changes.next() => message,
            () = shared.resubscribe.notified() => return Listened::Heard,
        };
        let Some(message) = message else { return Listened::Heard };
        let Some((seq, key)) = parse_change(message.get_payload_bytes()) else { continue };
        shared.near.invalidate(key);
        shared.applied.fetch_max(seq, Ordering::SeqCst);
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&shared.ack_key)
            .arg(seq)
            .arg("PX")
            .arg(ACK_TTL_MS)
            .query_async(&mut connection)
            .await;
    }
}

/// Drops every copy and the lease, and has the subscriber subscribe afresh
/// (reading the change number again).
fn start_over(shared: &Shared) {
    shared.near.stop_listening();
    shared.resubscribe.notify_one();
}

/// Renews the lease every `RENEW_EVERY` while the subscriber keeps up.
async fn keep_lease(mut connection: ConnectionManager, shared: Arc<Shared>) {
    let renew = redis::Script::new(RENEW);
    let lease_ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
    // The latest change number at the previous renewal: by the next one the subscriber must have applied it.
    let mut due: Option<u64> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(RENEW_EVERY) => {}
            () = shared.renew_now.notified() => {}
        }
        let applied = shared.applied.load(Ordering::SeqCst);
        if due.is_some_and(|due| applied < due) {
            tracing::warn!("cache change subscription stalled; resubscribing");
            start_over(&shared);
            due = None;
            continue;
        }
        let requested_at = Instant::now();
        let holding = shared.near.leased(requested_at);
        let mut invocation = renew.key(&shared.names.leases);
        invocation
            .key(&shared.ack_key)
            .key(&shared.names.sequence)
            .arg(&shared.replica)
            .arg(lease_ms)
            .arg(applied)
            .arg(ACK_TTL_MS)
            .arg(u8::from(holding));
        match invocation.invoke_async::<i64>(&mut connection).await {
            Ok(latest) if latest >= 0 => {
                shared.near.renew(requested_at, LEASE);
                due = u64::try_from(latest).ok();
            }
            Ok(_) => {
                tracing::warn!(
                    "redis lost cache change numbers or this replica's lease (flushed or evicted); starting over"
                );
                start_over(&shared);
                due = None;
            }
            // The lease runs out by itself.
            Err(_) => due = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_as_published() {
        assert_eq!(parse_change(b"42\nver:user:7"), Some((42, "ver:user:7")));
        assert_eq!(parse_change(b"42"), None);
        assert_eq!(parse_change(b"x\nver:user:7"), None);
    }

    #[test]
    fn writers_wait_longer_than_any_lease_can_last() {
        assert!(UNREACHABLE_WAIT > RENEW_EVERY + LEASE);
        assert!(WAIT_AT_MOST > UNREACHABLE_WAIT * 2);
        assert!(Duration::from_millis(ACK_TTL_MS) > LEASE * 4);
    }
}
