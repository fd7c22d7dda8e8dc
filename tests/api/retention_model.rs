//! Randomized retention test: random operation sequences (put, overwrite,
//! delete, retention set / extend / shorten / remove in both modes with and
//! without bypass, legal hold on/off, lifecycle runs and dry runs with `as_of`
//! jumps, time passing) by an admin, a manager and a writer, run through the
//! service layer against an independent model of AWS S3 Object Lock.
//! Every decision must match the model and no locked object may ever be lost.

use chrono::{DateTime, Duration, Utc};
use coffer::domain::{Permission, Role, Username};
use coffer::metadata::RetentionMode;
use coffer::policy::lifecycle::LifecycleRule;
use coffer::policy::retention::Retention;
use coffer::service::{Principal, RequestContext, ServiceError};

use crate::helpers::{TestApp, spawn_app};
use crate::support::stream_of;

/// Sequences per run: 10,000 on the embedded defaults; fewer on the real
/// services, where each step costs a network round trip (same code paths).
fn sequences() -> usize {
    let default = if crate::support::services_required() { 1_000 } else { 10_000 };
    std::env::var("COFFER_MODEL_SEQUENCES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
const STEPS: usize = 8;
const BUCKET: &str = "model";
const EXPIRE_DAYS: i64 = 3;

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Manager,
    Writer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    /// 403: the rules refuse the change.
    Forbidden,
    /// 400: a retention that ends in the past.
    Invalid,
    /// 404: no such object.
    Missing,
    /// 409 `object-locked`.
    Locked,
}

/// The reference model of one key: what AWS S3 Object Lock would hold.
#[derive(Debug, Clone, Default)]
struct Model {
    version: Option<u64>,
    created_at: Option<DateTime<Utc>>,
    retention: Option<(RetentionMode, DateTime<Utc>)>,
    hold: bool,
}

impl Model {
    fn locked(&self, now: DateTime<Utc>) -> bool {
        self.hold || self.retention.is_some_and(|(_, until)| until > now)
    }

    /// AWS PutObjectRetention, restated independently of `policy::retention`.
    fn retention_change(
        &self,
        who: Who,
        new: Option<(RetentionMode, DateTime<Utc>)>,
        bypass: bool,
        now: DateTime<Utc>,
    ) -> Expect {
        if self.version.is_none() {
            return Expect::Missing;
        }
        if who == Who::Writer {
            return Expect::Forbidden;
        }
        if new.is_some_and(|(_, until)| until <= now) {
            return Expect::Invalid;
        }
        match self.retention {
            Some((mode, until)) if until > now => {
                let extension = new.is_some_and(|(m, u)| m == mode && u >= until);
                match mode {
                    _ if extension => Expect::Ok,
                    RetentionMode::Compliance => Expect::Forbidden,
                    RetentionMode::Governance if bypass => Expect::Ok,
                    RetentionMode::Governance => Expect::Forbidden,
                }
            }
            _ => Expect::Ok,
        }
    }
}

fn outcome<T>(result: &Result<T, ServiceError>) -> Expect {
    match result {
        Ok(_) => Expect::Ok,
        Err(ServiceError::Forbidden(_)) => Expect::Forbidden,
        Err(ServiceError::BadRequest { .. }) => Expect::Invalid,
        Err(ServiceError::NotFound(_)) => Expect::Missing,
        Err(ServiceError::Conflict { slug: "object-locked", .. }) => Expect::Locked,
        Err(other) => panic!("unexpected error: {other:?}"),
    }
}

struct World {
    app: TestApp,
    admin: Principal,
    manager: Principal,
    writer: Principal,
    ctx: RequestContext,
}

impl World {
    fn who(&self, who: Who) -> &Principal {
        match who {
            Who::Admin => &self.admin,
            Who::Manager => &self.manager,
            Who::Writer => &self.writer,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.app.clock_now()
    }
}

async fn principal(app: &TestApp, name: &str, role: Role) -> Principal {
    app.create_user(name, role).await;
    let user = app
        .services
        .store
        .user_by_name(&Username::parse(name).expect("test setup"))
        .await
        .expect("test setup")
        .expect("test setup");
    Principal {
        user_id: user.id,
        username: user.username,
        role,
        via: coffer::policy::rbac::Via::Session { mfa: true },
        api_key_id: None,
        token_generation: user.token_generation,
        actor_label: None,
    }
}

fn mode(rng: &mut Rng) -> RetentionMode {
    if rng.coin() { RetentionMode::Governance } else { RetentionMode::Compliance }
}

async fn step(world: &World, rng: &mut Rng, key: &str, model: &mut Model, trace: &mut Vec<String>) {
    let bucket = BUCKET;
    let who = [Who::Admin, Who::Manager, Who::Writer][rng.below(3) as usize];
    let principal = world.who(who);
    let now = world.now();
    let services = &world.app.services;
    let (label, expected, actual) = match rng.below(9) {
        0 | 1 => {
            let version = rng.next();
            let result = services
                .put_object(
                    &world.ctx,
                    principal,
                    bucket,
                    key,
                    stream_of(version.to_le_bytes().to_vec()),
                    &Default::default(),
                )
                .await;
            let expected = if model.version.is_some() && model.locked(now) { Expect::Locked } else { Expect::Ok };
            if outcome(&result) == Expect::Ok {
                *model = Model { version: Some(version), created_at: Some(now), retention: None, hold: false };
            }
            ("put", expected, outcome(&result))
        }
        2 => {
            let result = services.delete_object(&world.ctx, principal, bucket, key, &Default::default()).await;
            let expected = match model.version {
                None => Expect::Missing,
                Some(_) if model.locked(now) => Expect::Locked,
                Some(_) => Expect::Ok,
            };
            if outcome(&result) == Expect::Ok {
                *model = Model::default();
            }
            ("delete", expected, outcome(&result))
        }
        3 | 4 => {
            let bypass = rng.coin();
            let new = if rng.below(4) == 0 {
                None
            } else {
                let base = model.retention.map_or(now, |(_, until)| until);
                Some((mode(rng), base + Duration::hours(rng.below(96) as i64 - 48)))
            };
            let requested = new.map(|(mode, retain_until)| Retention { mode, retain_until });
            let result = services.set_object_retention(&world.ctx, principal, bucket, key, requested, bypass).await;
            let expected = model.retention_change(who, new, bypass, now);
            if outcome(&result) == Expect::Ok {
                model.retention = new;
            }
            ("retention", expected, outcome(&result))
        }
        5 => {
            let on = rng.coin();
            let result = services.set_legal_hold(&world.ctx, principal, bucket, key, on).await;
            let expected = match model.version {
                None => Expect::Missing,
                Some(_) if who == Who::Writer => Expect::Forbidden,
                Some(_) => Expect::Ok,
            };
            if outcome(&result) == Expect::Ok {
                model.hold = on;
            }
            ("legal hold", expected, outcome(&result))
        }
        6 => {
            world.app.clock.advance(Duration::hours(rng.below(72) as i64));
            ("time passes", Expect::Ok, Expect::Ok)
        }
        7 => {
            let as_of = now + Duration::hours(rng.below(24 * 6) as i64);
            let report = services.run_lifecycle(&world.ctx, true, Some(as_of)).await.expect("dry run");
            let due = model.created_at.is_some_and(|c| c + Duration::days(EXPIRE_DAYS) <= as_of);
            let expected_expired = due && !model.locked(as_of);
            let expected_skipped = due && model.locked(as_of);
            assert_eq!(report.expired.len(), usize::from(expected_expired), "dry run as of {as_of}: {report:?}");
            assert_eq!(report.skipped_locked.len(), usize::from(expected_skipped), "dry run: {report:?}");
            ("lifecycle dry run", Expect::Ok, Expect::Ok)
        }
        _ => {
            let dry = services.run_lifecycle(&world.ctx, true, None).await.expect("dry run");
            let real = services.run_lifecycle(&world.ctx, false, None).await.expect("real run");
            assert_eq!(
                (&dry.expired, &dry.skipped_locked),
                (&real.expired, &real.skipped_locked),
                "dry run = real run"
            );
            let due = model.created_at.is_some_and(|c| c + Duration::days(EXPIRE_DAYS) <= now);
            if due && !model.locked(now) {
                assert_eq!(real.expired.len(), 1, "{real:?}");
                *model = Model::default();
            } else {
                assert!(real.expired.is_empty(), "{real:?}");
            }
            ("lifecycle run", Expect::Ok, Expect::Ok)
        }
    };
    trace.push(format!("{who:?} {label}: expected {expected:?}, got {actual:?}"));
    assert_eq!(actual, expected, "decision differs from S3 Object Lock semantics after:\n{}", trace.join("\n"));
}

#[tokio::test]
async fn random_sequences_match_object_lock_semantics() {
    let app = spawn_app().await;
    let admin = principal(&app, "model-admin", Role::Admin).await;
    let manager = principal(&app, "model-manager", Role::User).await;
    let writer = principal(&app, "model-writer", Role::User).await;
    let world = World { app, admin, manager, writer, ctx: RequestContext::default() };
    let services = &world.app.services;
    let seed = std::env::var("COFFER_MODEL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("test setup").as_nanos() as u64 | 1
    });
    println!("retention model seed {seed} (set COFFER_MODEL_SEED to replay)");
    let mut rng = Rng(seed);
    let rule = LifecycleRule {
        id: "expire".into(),
        prefix: String::new(),
        enabled: true,
        expire_after_days: Some(EXPIRE_DAYS as u32),
        abort_incomplete_uploads_after_days: None,
    };
    services.create_bucket(&world.ctx, &world.admin, BUCKET, None).await.expect("bucket");
    services
        .set_grant(&world.ctx, &world.admin, BUCKET, "model-manager", Permission::Manage)
        .await
        .expect("test setup");
    services.set_grant(&world.ctx, &world.admin, BUCKET, "model-writer", Permission::Write).await.expect("test setup");
    let bucket_record = services
        .store
        .bucket_by_name(&coffer::domain::BucketName::parse(BUCKET).expect("test setup"))
        .await
        .expect("test setup")
        .expect("test setup");
    let mut locked_checked = 0usize;
    for sequence in 0..sequences() {
        // Each sequence owns one key, and the lifecycle rule covers only that key.
        let prefix = format!("s{sequence}/");
        let key = format!("{prefix}k");
        let rule = LifecycleRule { prefix: prefix.clone(), ..rule.clone() };
        services.set_lifecycle_rules(&world.ctx, &world.admin, BUCKET, vec![rule]).await.expect("test setup");
        let mut model = Model::default();
        let mut trace = vec![format!("seed {seed}, sequence {sequence}")];
        for _ in 0..STEPS {
            step(&world, &mut rng, &key, &mut model, &mut trace).await;
        }
        // Nothing the model still holds is lost, and nothing else is there.
        let live = services
            .store
            .live_object(bucket_record.id, &coffer::domain::ObjectKey::parse(&key).expect("test setup"))
            .await
            .expect("test setup");
        assert_eq!(live.is_some(), model.version.is_some(), "{}", trace.join("\n"));
        if let (Some(live), Some(version)) = (&live, model.version) {
            let stored =
                crate::support::collect(services.blobs.get(&live.blob_key, None).await.expect("test setup").body).await;
            assert_eq!(stored, version.to_le_bytes(), "the live bytes are the model's version");
            if model.locked(world.now()) {
                locked_checked += 1;
            }
        }
    }
    assert!(locked_checked > 0, "some sequences must end with a locked object");
    println!("{} sequences, {locked_checked} ended locked and intact", sequences());
}
