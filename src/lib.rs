//! Coffer: a self-hosted object storage gateway in front of any S3 store.
//!
//! Layers (arrows point down only): `http` → `service` → `policy` / `domain` /
//! `metadata` / `storage` / `cache`; `workers` run background loops.

pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cpu_pinning;
pub mod domain;
pub mod http;
pub mod keys;
pub mod media;
pub mod metadata;
pub mod metrics;
pub mod policy;
pub mod service;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod workers;
