//! B6(a): the in-process cost of producing one presigned gateway GET URL with
//! Coffer's own signer, and of verifying one.
//!
//! It repeats exactly what `Services::gateway_url` does (that method is
//! private): percent-encode the object path (`presign::object_path`), HMAC it
//! with `signing::UrlSigner::sign`, and format the URL with the query of
//! `SignedParams::to_query`. Not included: the bucket authorization and the
//! audit event of `POST /api/v1/presign` (B6(b) measures those over HTTP).
//!
//! Timed with `std::time::Instant` over BATCHES batches of BATCH URLs each; the
//! median batch, divided by BATCH, is printed as JSON on stdout.
//! `cargo run --release --example presign_bench [-- BATCHES BATCH]`
//! (BENCH_QUICK=1 in the environment: a short run.)

use std::hint::black_box;
use std::time::Instant;

use coffer::service::presign::object_path;
use coffer::service::signing::{Claim, UrlSigner};
use secrecy::SecretBox;

const PUBLIC_URL: &str = "https://coffer.example.com";

fn presigned_get(signer: &UrlSigner, bucket: &str, key: &str, expires: i64) -> String {
    let raw_path = object_path(bucket, key);
    let signed = signer.sign(&Claim {
        method: "GET",
        raw_path: &raw_path,
        expires,
        signer: 42,
        generation: 3,
        api_key: Some("0190f3b2-6c1e-7d4a-9b7e-3f7c2a1d5e6f"),
    });
    format!("{PUBLIC_URL}{raw_path}?{}", signed.to_query())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// Nanoseconds per operation of each batch, sorted.
fn measure(batches: usize, batch: usize, mut op: impl FnMut(usize)) -> Vec<f64> {
    // Warm-up: caches, branch predictors, the allocator's free lists.
    for i in 0..batch {
        op(i);
    }
    let mut samples = Vec::with_capacity(batches);
    for b in 0..batches {
        let start = Instant::now();
        for i in 0..batch {
            op(b * batch + i);
        }
        samples.push(start.elapsed().as_nanos() as f64 / batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("BATCHES and BATCH are numbers"));
    let batches = args.next().unwrap_or(if quick { 20 } else { 200 });
    let batch = args.next().unwrap_or(if quick { 1_000 } else { 5_000 });

    let signer = UrlSigner::new(
        SecretBox::new(Box::new([7u8; 32])),
        Some((SecretBox::new(Box::new([9u8; 32])), chrono::Utc::now() + chrono::Duration::hours(1))),
    );
    let expires = chrono::Utc::now().timestamp() + 3600;
    // Keys like an app's: a folder, a unicode name, a space (percent-encoded).
    let keys: Vec<String> = (0..64).map(|i| format!("photos/2026/11/Ünïcode holiday {i:04}.jpg")).collect();

    let sign = measure(batches, batch, |i| {
        black_box(presigned_get(&signer, black_box("family-photos"), &keys[i % keys.len()], expires));
    });

    // Verification, as `authenticate_signed` does it after its lookups.
    let url = presigned_get(&signer, "family-photos", &keys[0], expires);
    let (path_and_host, query) = url.split_once('?').unwrap_or((&url, ""));
    let raw_path = &path_and_host[PUBLIC_URL.len()..];
    let params = coffer::service::signing::SignedParams::from_query(query).ok().flatten().unwrap_or_else(|| {
        unreachable!("a URL this program just signed parses");
    });
    let now = chrono::Utc::now();
    let verify = measure(batches, batch, |_| {
        let claim = Claim {
            method: "GET",
            raw_path: black_box(raw_path),
            expires: params.expires,
            signer: params.signer,
            generation: 3,
            api_key: params.api_key.as_deref(),
        };
        let parsed = coffer::service::signing::SignedParams::from_query(black_box(query));
        black_box(parsed.is_ok() && signer.verify(&claim, &params.signature, &params.key_id, now));
    });

    println!(
        "{}",
        serde_json::json!({
            "figure": "B6 presign in-process",
            "batches": batches,
            "batch": batch,
            "url_example_length": url.len(),
            "sign_median_ns": percentile(&sign, 0.5),
            "sign_p10_ns": percentile(&sign, 0.1),
            "sign_p90_ns": percentile(&sign, 0.9),
            "verify_median_ns": percentile(&verify, 0.5),
            "verify_p90_ns": percentile(&verify, 0.9),
            "target_sign_ns": 20_000,
        })
    );
}
