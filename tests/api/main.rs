//! HTTP tests through a real server (`spawn_app`), on embedded defaults and,
//! when configured, on PostgreSQL + Redis + S3.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod audit;
mod audit_key;
mod backend_buckets;
mod backup;
mod cli;
mod client_mistakes;
mod coherence;
mod faults;
mod first_admin;
mod fuzz_forms;
mod hardening;
mod health;
mod helpers;
mod identity;
mod key_scopes;
mod lifecycle;
mod metrics;
mod near_copies;
mod object_races;
mod object_streams;
mod objects;
mod presign;
mod rate_limits;
mod retention;
mod retention_mirror;
mod retention_model;
mod shares;
mod thumbnails;
mod upload_retries;
mod uploads;
mod web_session;
